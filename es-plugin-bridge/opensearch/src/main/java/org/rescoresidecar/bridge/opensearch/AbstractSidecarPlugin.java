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
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.SidecarSettings;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.function.Supplier;

/**
 * What the OpenSearch lines share: the {@code sidecar} rescorer, its node settings and
 * {@code GET /_sidecar/stats}. The plugin instance owns the node's {@link SidecarService}; builders
 * get it from the parser and reader this instance registers (no static state). Each engine line's
 * {@code SidecarPlugin} picks up the node's thread context with that line's
 * {@code createComponents} signature.
 */
public abstract class AbstractSidecarPlugin extends Plugin implements SearchPlugin, ActionPlugin {
    /** The node settings: names, defaults and parsing are the shared core's ({@link SidecarSettings#KEYS}). */
    static final Map<String, Setting<String>> SETTINGS = SidecarSettings.KEYS.stream().collect(Collectors.toMap(
        SidecarSettings.Key::name, k -> Setting.simpleString(k.name(), k.defaultValue(), Setting.Property.NodeScope),
        (x, y) -> x, LinkedHashMap::new));

    protected final NodeBridge bridge;

    protected AbstractSidecarPlugin(Settings settings) {
        SidecarService service = new SidecarService(SidecarSettings.fromValues(name -> SETTINGS.get(name).get(settings)));
        service.warmUp();
        bridge = new NodeBridge(service);
    }

    /** Called by each line's {@code createComponents}: the search's X-Opaque-Id for request ids. */
    protected final void useThreadContext(ThreadContext threadContext) {
        bridge.opaqueId = () -> threadContext.getHeader(Task.X_OPAQUE_ID);
    }

    @Override
    public List<Setting<?>> getSettings() {
        return List.copyOf(SETTINGS.values());
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
