package org.rescoresidecar.bridge.elasticsearch;

import org.elasticsearch.common.settings.Setting;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.util.concurrent.ThreadContext;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.SearchPlugin;
import org.elasticsearch.tasks.Task;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.SidecarService;
import org.rescoresidecar.bridge.core.SidecarSettings;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * What the Elasticsearch lines share: the {@code sidecar} rescorer and its node settings. The plugin
 * instance owns the node's {@link SidecarService}; builders get it from the parser and reader this
 * instance registers (no static state). Each engine line's {@code SidecarPlugin} adds
 * {@code GET /_sidecar/stats} with that line's REST handler signature.
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

    @Override
    public Collection<?> createComponents(PluginServices services) {
        ThreadContext threadContext = services.threadPool().getThreadContext();
        bridge.opaqueId = () -> threadContext.getHeader(Task.X_OPAQUE_ID_HTTP_HEADER);
        return List.of();
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
    public void close() {
        bridge.service.close();
    }
}
