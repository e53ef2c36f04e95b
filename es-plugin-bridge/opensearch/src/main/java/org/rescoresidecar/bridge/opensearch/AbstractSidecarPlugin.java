package org.rescoresidecar.bridge.opensearch;

import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.util.concurrent.ThreadContext;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.rest.RestHandler;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.rest.RestController;
import org.opensearch.tasks.Task;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.ShardRescore;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.SidecarSettings;

import java.util.List;
import java.util.function.Supplier;

/**
 * What the OpenSearch lines share: the {@code sidecar} rescorer, its node settings and
 * {@code GET /_sidecar/stats}. The plugin instance owns the node's {@link SidecarService}; builders
 * get it from the parser and reader this instance registers (no static state). Each engine line's
 * {@code SidecarPlugin} picks up the node's thread context with that line's
 * {@code createComponents} signature.
 */
public abstract class AbstractSidecarPlugin extends Plugin implements SearchPlugin, ActionPlugin {
    static final Setting<String> URL = Setting.simpleString("sidecar.url", SidecarSettings.DEFAULT_URL, Setting.Property.NodeScope);
    static final Setting<Integer> TIMEOUT_MS = Setting.intSetting("sidecar.timeout_ms", SidecarSettings.DEFAULT_TIMEOUT_MS, 1,
        RescoreParams.MAX_TIMEOUT_MS, Setting.Property.NodeScope);
    static final Setting<Integer> CONNECT_TIMEOUT_MS = Setting.intSetting("sidecar.connect_timeout_ms",
        SidecarSettings.DEFAULT_CONNECT_TIMEOUT_MS, 1, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_WINDOW_MS = Setting.intSetting("sidecar.breaker.window_ms",
        SidecarSettings.DEFAULT_BREAKER_WINDOW_MS, 100, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_MIN_CALLS = Setting.intSetting("sidecar.breaker.min_calls",
        SidecarSettings.DEFAULT_BREAKER_MIN_CALLS, 1, Setting.Property.NodeScope);
    static final Setting<Double> BREAKER_FAILURE_RATE = Setting.doubleSetting("sidecar.breaker.failure_rate",
        SidecarSettings.DEFAULT_BREAKER_FAILURE_RATE, 0.01, 1.0, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_COOLDOWN_MS = Setting.intSetting("sidecar.breaker.cooldown_ms",
        SidecarSettings.DEFAULT_BREAKER_COOLDOWN_MS, 0, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_PROBES = Setting.intSetting("sidecar.breaker.probes",
        SidecarSettings.DEFAULT_BREAKER_PROBES, 1, Setting.Property.NodeScope);
    static final Setting<Integer> BREAKER_RAMP_MS = Setting.intSetting("sidecar.breaker.ramp_ms",
        SidecarSettings.DEFAULT_BREAKER_RAMP_MS, 0, Setting.Property.NodeScope);
    static final Setting<String> FALLBACK_SCORES = new Setting<>("sidecar.fallback_scores", SidecarSettings.DEFAULT_FALLBACK_SCORES,
        v -> {
            ShardRescore.FallbackMode.fromSetting(v);
            return v;
        }, Setting.Property.NodeScope);

    protected final NodeBridge bridge;

    protected AbstractSidecarPlugin(Settings settings) {
        SidecarService service = new SidecarService(new SidecarSettings(SidecarSettings.rescoreUri(URL.get(settings)),
            TIMEOUT_MS.get(settings), CONNECT_TIMEOUT_MS.get(settings), BREAKER_WINDOW_MS.get(settings),
            BREAKER_MIN_CALLS.get(settings), BREAKER_FAILURE_RATE.get(settings), BREAKER_COOLDOWN_MS.get(settings),
            BREAKER_PROBES.get(settings), BREAKER_RAMP_MS.get(settings),
            ShardRescore.FallbackMode.fromSetting(FALLBACK_SCORES.get(settings))));
        service.warmUp();
        bridge = new NodeBridge(service);
    }

    /** Called by each line's {@code createComponents}: the search's X-Opaque-Id for request ids. */
    protected final void useThreadContext(ThreadContext threadContext) {
        bridge.opaqueId = () -> threadContext.getHeader(Task.X_OPAQUE_ID);
    }

    @Override
    public List<Setting<?>> getSettings() {
        return List.of(URL, TIMEOUT_MS, CONNECT_TIMEOUT_MS, BREAKER_WINDOW_MS, BREAKER_MIN_CALLS, BREAKER_FAILURE_RATE,
            BREAKER_COOLDOWN_MS, BREAKER_PROBES, BREAKER_RAMP_MS, FALLBACK_SCORES);
    }

    @Override
    public List<RescorerSpec<?>> getRescorers() {
        return List.of(new RescorerSpec<>(RescoreParams.NAME, in -> new SidecarRescorerBuilder(in, bridge),
            parser -> SidecarRescorerBuilder.fromXContent(parser, bridge)));
    }

    @Override
    public List<RestHandler> getRestHandlers(Settings settings, RestController restController, ClusterSettings clusterSettings,
                                             IndexScopedSettings indexScopedSettings, SettingsFilter settingsFilter,
                                             IndexNameExpressionResolver indexNameExpressionResolver,
                                             Supplier<DiscoveryNodes> nodesInCluster) {
        return List.of(new RestSidecarStatsAction(bridge.service));
    }

    @Override
    public void close() {
        bridge.service.close();
    }
}
