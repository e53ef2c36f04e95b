package org.rescoresidecar.bridge.opensearch;

import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.rest.RestController;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.rest.RestHandler;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.SidecarSettings;

import java.util.List;
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
    public List<RestHandler> getRestHandlers(Settings settings, RestController restController, ClusterSettings clusterSettings,
                                             IndexScopedSettings indexScopedSettings, SettingsFilter settingsFilter,
                                             IndexNameExpressionResolver indexNameExpressionResolver,
                                             Supplier<DiscoveryNodes> nodesInCluster) {
        return List.of(new RestSidecarStatsAction());
    }

    @Override
    public void close() {
        own.close();
    }
}
