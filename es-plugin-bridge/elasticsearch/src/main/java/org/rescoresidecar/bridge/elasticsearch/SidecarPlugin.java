package org.rescoresidecar.bridge.elasticsearch;

import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.settings.Setting;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.SearchPlugin;
import org.elasticsearch.rest.RestHandler;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.SidecarSettings;

import java.util.Collection;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;

/** Registers the {@code sidecar} rescorer, its node settings and {@code GET /_sidecar/stats}. */
public class SidecarPlugin extends Plugin implements SearchPlugin, ActionPlugin {
    static final Setting<String> URL = Setting.simpleString("sidecar.url", SidecarSettings.DEFAULT_URL, Setting.Property.NodeScope);
    static final Setting<Integer> TIMEOUT_MS = Setting.intSetting("sidecar.timeout_ms", SidecarSettings.DEFAULT_TIMEOUT_MS, 1,
        RescoreParams.MAX_TIMEOUT_MS, Setting.Property.NodeScope);
    static final Setting<Integer> CONNECT_TIMEOUT_MS = Setting.intSetting("sidecar.connect_timeout_ms",
        SidecarSettings.DEFAULT_CONNECT_TIMEOUT_MS, 1, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_FAILURES = Setting.intSetting("sidecar.breaker.failures",
        SidecarSettings.DEFAULT_BREAKER_FAILURES, 1, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_COOLDOWN_MS = Setting.intSetting("sidecar.breaker.cooldown_ms",
        SidecarSettings.DEFAULT_BREAKER_COOLDOWN_MS, 0, Setting.Property.NodeScope);

    /** The node's service; rescorer builders are created by the parser, so they find it here. */
    private static volatile SidecarService service;

    private final SidecarService own;

    public SidecarPlugin(Settings settings) {
        own = new SidecarService(new SidecarSettings(URL.get(settings), TIMEOUT_MS.get(settings), CONNECT_TIMEOUT_MS.get(settings),
            BREAKER_FAILURES.get(settings), BREAKER_COOLDOWN_MS.get(settings)));
        own.warmUp();
        service = own;
    }

    static SidecarService service() {
        SidecarService s = service;
        if (s == null) {
            throw new IllegalStateException("the rescore-sidecar plugin is not initialised on this node");
        }
        return s;
    }

    @Override
    public List<Setting<?>> getSettings() {
        return List.of(URL, TIMEOUT_MS, CONNECT_TIMEOUT_MS, BREAKER_FAILURES, BREAKER_COOLDOWN_MS);
    }

    @Override
    public List<RescorerSpec<?>> getRescorers() {
        return List.of(new RescorerSpec<>(RescoreParams.NAME, SidecarRescorerBuilder::new, SidecarRescorerBuilder::fromXContent));
    }

    @Override
    public Collection<RestHandler> getRestHandlers(RestHandlersServices services, Supplier<DiscoveryNodes> nodesInCluster,
                                                   Predicate<NodeFeature> clusterSupportsFeature) {
        return List.of(new RestSidecarStatsAction());
    }

    @Override
    public void close() {
        own.close();
    }
}
