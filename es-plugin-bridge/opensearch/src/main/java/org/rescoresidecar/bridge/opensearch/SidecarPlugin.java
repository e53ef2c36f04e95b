package org.rescoresidecar.bridge.opensearch;

import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.util.concurrent.ThreadContext;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.rest.RestHandler;
import org.opensearch.client.Client;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.env.Environment;
import org.opensearch.env.NodeEnvironment;
import org.opensearch.repositories.RepositoriesService;
import org.opensearch.rest.RestController;
import org.opensearch.script.ScriptService;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.watcher.ResourceWatcherService;
import org.opensearch.tasks.Task;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.ShardRescore;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.SidecarSettings;

import java.util.Collection;
import java.util.List;
import java.util.function.Supplier;

/**
 * Registers the {@code sidecar} rescorer, its node settings and {@code GET /_sidecar/stats}. The
 * plugin instance owns the node's {@link SidecarService}; builders get it from the parser and
 * reader this instance registers (no static state).
 */
public class SidecarPlugin extends Plugin implements SearchPlugin, ActionPlugin {
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

    private final NodeBridge bridge;

    public SidecarPlugin(Settings settings) {
        SidecarService service = new SidecarService(new SidecarSettings(SidecarSettings.rescoreUri(URL.get(settings)),
            TIMEOUT_MS.get(settings), CONNECT_TIMEOUT_MS.get(settings), BREAKER_WINDOW_MS.get(settings),
            BREAKER_MIN_CALLS.get(settings), BREAKER_FAILURE_RATE.get(settings), BREAKER_COOLDOWN_MS.get(settings),
            BREAKER_PROBES.get(settings), BREAKER_RAMP_MS.get(settings),
            ShardRescore.FallbackMode.fromSetting(FALLBACK_SCORES.get(settings))));
        service.warmUp();
        bridge = new NodeBridge(service);
    }

    @Override
    public Collection<Object> createComponents(Client client, ClusterService clusterService, ThreadPool threadPool,
                                               ResourceWatcherService resourceWatcherService, ScriptService scriptService,
                                               NamedXContentRegistry xContentRegistry, Environment environment,
                                               NodeEnvironment nodeEnvironment, NamedWriteableRegistry namedWriteableRegistry,
                                               IndexNameExpressionResolver indexNameExpressionResolver,
                                               Supplier<RepositoriesService> repositoriesServiceSupplier) {
        ThreadContext threadContext = threadPool.getThreadContext();
        bridge.opaqueId = () -> threadContext.getHeader(Task.X_OPAQUE_ID);
        return List.of();
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

    /** What a builder needs of its node: the service, and the search's X-Opaque-Id once the node is up. */
    static final class NodeBridge {
        final SidecarService service;
        volatile Supplier<String> opaqueId = () -> null;

        NodeBridge(SidecarService service) {
            this.service = service;
        }
    }
}
