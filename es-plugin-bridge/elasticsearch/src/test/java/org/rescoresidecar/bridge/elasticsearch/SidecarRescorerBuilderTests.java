package org.rescoresidecar.bridge.elasticsearch;

import org.elasticsearch.common.io.stream.BytesStreamOutput;
import org.elasticsearch.common.io.stream.StreamInput;
import org.elasticsearch.common.xcontent.XContentHelper;
import org.elasticsearch.search.rescore.RescorerBuilder;
import org.elasticsearch.xcontent.NamedXContentRegistry;
import org.elasticsearch.xcontent.ParseField;
import org.elasticsearch.xcontent.ToXContent;
import org.elasticsearch.xcontent.XContentParser;
import org.elasticsearch.xcontent.XContentParserConfiguration;
import org.elasticsearch.xcontent.XContentType;
import org.elasticsearch.xcontent.json.JsonXContent;
import org.junit.jupiter.api.Test;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.ScoreMode;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** DSL and wire round trips with Elasticsearch's own parser and stream classes. */
class SidecarRescorerBuilderTests {
    private static final NamedXContentRegistry REGISTRY = new NamedXContentRegistry(List.of(new NamedXContentRegistry.Entry(
        RescorerBuilder.class, new ParseField(RescoreParams.NAME), p -> SidecarRescorerBuilder.fromXContent(p, null))));

    static RescorerBuilder<?> parse(String json) throws Exception {
        try (XContentParser p = JsonXContent.jsonXContent.createParser(XContentParserConfiguration.EMPTY.withRegistry(REGISTRY), json)) {
            p.nextToken();
            return RescorerBuilder.parseFromXContent(p, name -> {});
        }
    }

    static final String ISSUE_EXAMPLE = "{\"window_size\": 100, \"sidecar\": {\"model\": \"marketplace\", \"id_field\": \"item_id\","
        + " \"fields\": [\"price\"], \"query_text\": \"cool toys\", \"user_id\": \"u42\", \"timeout_ms\": 30}}";

    static final String FULL = "{\"window_size\": 100, \"sidecar\": {\"model\": \"marketplace\", \"id_field\": \"item_id\","
        + " \"fields\": {\"price\": \"price_eur\"}, \"query\": {\"text\": \"cool toys\", \"user_id\": \"u42\", \"session_id\": \"s\","
        + " \"features\": {\"user_budget\": 150, \"intent_category\": 3}, \"attributes\": {\"device\": \"mobile\"}},"
        + " \"context\": {\"index\": \"listings\"}, \"request_id\": \"r-1\", \"timeout_ms\": 30}}";

    @Test
    void parsesTheDocumentedExample() throws Exception {
        SidecarRescorerBuilder b = (SidecarRescorerBuilder) parse(ISSUE_EXAMPLE);
        assertEquals(100, b.windowSize());
        RescoreParams p = b.params();
        assertEquals("marketplace", p.model());
        assertEquals("item_id", p.idField());
        assertEquals(List.of("price"), p.featureNames());
        assertEquals("cool toys", p.query().text());
        assertEquals("u42", p.query().userId());
        assertEquals(30, p.timeoutMs());
        assertEquals(ScoreMode.REPLACE, p.scoreMode());
    }

    @Test
    void parsesTheWholeContract() throws Exception {
        RescoreParams p = ((SidecarRescorerBuilder) parse(FULL)).params();
        assertEquals(java.util.Map.of("price", "price_eur"), p.fields());
        assertEquals(java.util.Map.of("user_budget", 150.0, "intent_category", 3.0), p.query().features());
        assertEquals(java.util.Map.of("device", "mobile"), p.query().attributes());
        assertEquals(java.util.Map.of("index", "listings"), p.context());
        assertEquals("s", p.query().sessionId());
        assertEquals("r-1", p.requestId());
    }

    @Test
    void xcontentRoundTrip() throws Exception {
        for (String json : new String[] {ISSUE_EXAMPLE, FULL,
            "{\"window_size\": 50, \"sidecar\": {\"id_field\": \"sku\", \"score_mode\": \"weighted\", \"query_weight\": 0.5, \"model_weight\": 2}}"}) {
            RescorerBuilder<?> b = parse(json);
            String rendered = XContentHelper.toXContent(b, XContentType.JSON, ToXContent.EMPTY_PARAMS, false).utf8ToString();
            RescorerBuilder<?> again = parse(rendered);
            assertEquals(b, again, rendered);
            assertEquals(b.hashCode(), again.hashCode());
        }
    }

    @Test
    void wireRoundTrip() throws Exception {
        for (String json : new String[] {ISSUE_EXAMPLE, FULL, "{\"sidecar\": {\"id_field\": \"id\", \"timeout_ms\": 7}}"}) {
            SidecarRescorerBuilder original = (SidecarRescorerBuilder) parse(json);
            try (BytesStreamOutput out = new BytesStreamOutput()) {
                original.writeTo(out);
                try (StreamInput in = out.bytes().streamInput()) {
                    SidecarRescorerBuilder read = new SidecarRescorerBuilder(in, null);
                    assertEquals(original, read);
                    assertEquals(original.windowSize(), read.windowSize());
                }
            }
        }
    }

    @Test
    void badDslIsA400StyleError() {
        Exception unknown = assertThrows(Exception.class, () -> parse("{\"sidecar\": {\"id_field\": \"x\", \"modle\": \"m\"}}"));
        assertTrue(unknown.getMessage().contains("modle"), unknown.getMessage());
        Exception missing = assertThrows(IllegalArgumentException.class, () -> parse("{\"sidecar\": {\"model\": \"m\"}}"));
        assertTrue(missing.getMessage().contains("id_field is required"), missing.getMessage());
        Exception timeout = assertThrows(IllegalArgumentException.class,
            () -> parse("{\"sidecar\": {\"id_field\": \"x\", \"timeout_ms\": 0}}"));
        assertTrue(timeout.getMessage().contains("timeout_ms"), timeout.getMessage());
        Exception type = assertThrows(IllegalArgumentException.class,
            () -> parse("{\"sidecar\": {\"id_field\": \"x\", \"query\": {\"features\": {\"a\": \"high\"}}}}"));
        assertTrue(type.getMessage().contains("query.features.a must be a number"), type.getMessage());
        Exception conflict = assertThrows(IllegalArgumentException.class,
            () -> parse("{\"sidecar\": {\"id_field\": \"x\", \"query_text\": \"a\", \"query\": {\"text\": \"b\"}}}"));
        assertTrue(conflict.getMessage().contains("shorthand"), conflict.getMessage());
    }
}
