package org.rescoresidecar.bridge.opensearch;

import org.rescoresidecar.bridge.it.AbstractBridgeIT;
import org.rescoresidecar.bridge.it.EngineNode;

/**
 * A real OpenSearch node (integ-test-zip distribution from Maven Central) with the plugin zip installed by
 * {@code bin/opensearch-plugin}: the full scenarios (the newest line). The engine line's pom picks which IT runs.
 */
class OpenSearchBridgeIT extends AbstractBridgeIT {
    @Override
    protected EngineNode.Flavor flavor() {
        return EngineNode.Flavor.OPENSEARCH;
    }
}
