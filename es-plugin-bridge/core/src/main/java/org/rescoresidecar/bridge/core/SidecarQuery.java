package org.rescoresidecar.bridge.core;

import java.util.Map;

/**
 * The query context sent as {@code query} of {@code POST /v1/rescore}: the text, who searches and
 * the query-level features and string attributes the model's manifest reads. Maps keep their DSL
 * order so that rendering and the wire are deterministic.
 */
public record SidecarQuery(String text, String userId, String sessionId, Map<String, Double> features,
                           Map<String, String> attributes) {
    public static final SidecarQuery EMPTY = new SidecarQuery(null, null, null, Map.of(), Map.of());

    public SidecarQuery {
        features = DslValues.frozen(features);
        attributes = DslValues.frozen(attributes);
    }

    public boolean isEmpty() {
        return text == null && userId == null && sessionId == null && features.isEmpty() && attributes.isEmpty();
    }
}
