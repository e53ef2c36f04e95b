package org.rescoresidecar.bridge.opensearch;

import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.xcontent.XContentHelper;
import org.opensearch.search.rescore.RescorerBuilder;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.ParseField;
import org.opensearch.core.xcontent.ToXContent;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.common.xcontent.XContentType;
import org.opensearch.common.xcontent.json.JsonXContent;
import org.junit.jupiter.api.Test;
import org.rescoresidecar.bridge.core.RescoreParams;
import org.rescoresidecar.bridge.core.ScoreMode;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** DSL and wire round trips with OpenSearch's own parser and stream classes. */
class SidecarRescorerBuilderTests {
    private static final NamedXContentRegistry REGISTRY = new NamedXContentRegistry(List.of(new NamedXContentRegistry.Entry(
        RescorerBuilder.class, new ParseField(RescoreParams.NAME), SidecarRescorerBuilder::fromXContent)));

    static RescorerBuilder<?> parse(String json) throws Exception {
        try (XContentParser p = JsonXContent.jsonXContent.createParser(REGISTRY, DeprecationHandler.THROW_UNSUPPORTED_OPERATION, json)) {
            p.nextToken();
            return RescorerBuilder.parseFromXContent(p);
        }
    }

    static final String ISSUE_EXAMPLE = "{\"window_size\": 100, \"sidecar\": {\"model\": \"marketplace\", \"id_field\": \"item_id\","
        + " \"fields\": [\"price\"], \"query_text\": \"cool toys\", \"user_id\": \"u42\", \"timeout_ms\": 30}}";

    @Test
    void parsesTheDocumentedExample() throws Exception {
        SidecarRescorerBuilder b = (SidecarRescorerBuilder) parse(ISSUE_EXAMPLE);
        assertEquals(100, b.windowSize());
        RescoreParams p = b.params();
        assertEquals("marketplace", p.model());
        assertEquals("item_id", p.idField());
        assertEquals(List.of("price"), p.fields());
        assertEquals("cool toys", p.queryText());
        assertEquals("u42", p.userId());
        assertEquals(30, p.timeoutMs());
        assertEquals(ScoreMode.REPLACE, p.scoreMode());
    }

    @Test
    void xcontentRoundTrip() throws Exception {
        for (String json : new String[] {ISSUE_EXAMPLE,
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
        SidecarRescorerBuilder b = new SidecarRescorerBuilder(new RescoreParams("m", "item_id", List.of("price", "rating"), "q", null,
            null, ScoreMode.WEIGHTED, 0.25f, 4f)).windowSize(64);
        SidecarRescorerBuilder none = new SidecarRescorerBuilder(new RescoreParams(null, "id", null, null, null, 7, null, null, null));
        for (SidecarRescorerBuilder original : List.of(b, none)) {
            try (BytesStreamOutput out = new BytesStreamOutput()) {
                original.writeTo(out);
                try (StreamInput in = out.bytes().streamInput()) {
                    SidecarRescorerBuilder read = new SidecarRescorerBuilder(in);
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
    }
}
