package org.rescoresidecar.bridge.elasticsearch;

import org.rescoresidecar.bridge.it.AbstractBridgeIT;
import org.rescoresidecar.bridge.it.EngineNode;

import java.util.Map;

/**
 * A real Elasticsearch node (integ-test-zip distribution from Maven Central, run on the Temurin 25
 * JDK with entitlements enforced) with the plugin zip installed by {@code bin/elasticsearch-plugin}.
 */
class ElasticsearchBridgeIT extends AbstractBridgeIT {
    @Override
    protected EngineNode.Flavor flavor() {
        return EngineNode.Flavor.ELASTICSEARCH;
    }

    @Override
    protected Map<String, String> engineSettings() {
        // the distribution carries x-pack security; this test node speaks plain HTTP on loopback
        return Map.of("xpack.security.enabled", "false");
    }

    @Override
    protected String pluginName() {
        return "rescore-sidecar";
    }
}
