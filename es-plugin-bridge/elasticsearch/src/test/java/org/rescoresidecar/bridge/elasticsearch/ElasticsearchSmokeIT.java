package org.rescoresidecar.bridge.elasticsearch;

import org.rescoresidecar.bridge.it.AbstractSmokeIT;
import org.rescoresidecar.bridge.it.EngineNode;

/**
 * A real Elasticsearch node (integ-test-zip distribution from Maven Central) with the plugin zip installed by
 * {@code bin/elasticsearch-plugin}: the smoke test (the older line). The engine line's pom picks which IT runs.
 */
class ElasticsearchSmokeIT extends AbstractSmokeIT {
    @Override
    protected EngineNode.Flavor flavor() {
        return EngineNode.Flavor.ELASTICSEARCH;
    }
}
