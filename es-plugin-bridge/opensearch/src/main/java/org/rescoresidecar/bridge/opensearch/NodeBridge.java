package org.rescoresidecar.bridge.opensearch;

import org.rescoresidecar.bridge.core.SidecarService;

import java.util.function.Supplier;

/** What a builder needs of its node: the service, and the search's X-Opaque-Id once the node is up. */
final class NodeBridge {
    final SidecarService service;
    volatile Supplier<String> opaqueId = () -> null;

    NodeBridge(SidecarService service) {
        this.service = service;
    }
}
