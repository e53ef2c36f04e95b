package org.rescoresidecar.bridge.opensearch;

import org.rescoresidecar.bridge.it.AbstractBridgeIT;
import org.rescoresidecar.bridge.it.EngineNode;

/**
 * A real OpenSearch node (integ-test-zip distribution from Maven Central, run on Java 17 with the
 * Security Manager enforcing the plugin's policy) with the zip installed by {@code bin/opensearch-plugin}.
 */
class OpenSearchBridgeIT extends AbstractBridgeIT {
    @Override
    protected EngineNode.Flavor flavor() {
        return EngineNode.Flavor.OPENSEARCH;
    }

    @Override
    protected String pluginName() {
        return "rescore-sidecar";
    }
}
