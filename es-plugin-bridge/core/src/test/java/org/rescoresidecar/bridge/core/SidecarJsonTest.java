package org.rescoresidecar.bridge.core;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SidecarJsonTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void requestFollowsTheContract() throws Exception {
        RescoreParams p = RescoreParams.fromDsl(RescoreParamsTest.json("{\"model\": \"marketplace\", \"id_field\": \"item_id\","
            + " \"fields\": {\"price\": \"price_eur\", \"rating\": \"rating\"}, \"query_text\": \"cool \\\"toys\\\"\","
            + " \"query\": {\"user_id\": \"u42\", \"session_id\": \"s7\", \"features\": {\"user_budget\": 150, \"intent_category\": 3},"
            + " \"attributes\": {\"device\": \"mobile\"}}, \"context\": {\"index\": \"listings\"}, \"request_id\": \"r-1\","
            + " \"timeout_ms\": 30}"));
        byte[] body = SidecarJson.writeRequest(p, List.of(
            new HitInput("m1", 12.5f, new double[] {1200, 4.5}),
            new HitInput("m2", 3.25f, new double[] {Double.NaN, 1})), 24);
        JsonNode n = JSON.readTree(body);
        assertEquals("marketplace", n.get("model").asText());
        assertEquals("cool \"toys\"", n.get("query").get("text").asText());
        assertEquals("u42", n.get("query").get("user_id").asText());
        assertEquals("s7", n.get("query").get("session_id").asText());
        assertEquals(150.0, n.get("query").get("features").get("user_budget").asDouble());
        assertEquals(3.0, n.get("query").get("features").get("intent_category").asDouble());
        assertEquals("mobile", n.get("query").get("attributes").get("device").asText());
        assertEquals("listings", n.get("context").get("index").asText());
        assertEquals("r-1", n.get("request_id").asText());
        assertEquals(24, n.get("timeout_ms").asInt());
        assertEquals(2, n.get("hits").size());
        assertEquals("m1", n.get("hits").get(0).get("id").asText());
        assertEquals(12.5, n.get("hits").get(0).get("score").asDouble());
        assertEquals(1200.0, n.get("hits").get(0).get("features").get("price").asDouble());
        assertFalse(n.get("hits").get(1).get("features").has("price"), "missing values are left out");
        assertEquals(1.0, n.get("hits").get(1).get("features").get("rating").asDouble());
    }

    @Test
    void requestWithoutOptionalParts() throws Exception {
        RescoreParams p = RescoreParams.of(null, "item_id");
        JsonNode n = JSON.readTree(SidecarJson.writeRequest(p, List.of(new HitInput(null, 1f, new double[0])), 5));
        assertFalse(n.has("model"));
        assertFalse(n.has("query"));
        assertFalse(n.has("context"));
        assertFalse(n.has("request_id"));
        assertFalse(n.get("hits").get(0).has("features"));
        assertEquals("", n.get("hits").get(0).get("id").asText());
    }

    static SidecarResult parse(String body, int n) throws SidecarException {
        return SidecarJson.parseResponse(body.getBytes(StandardCharsets.UTF_8), n);
    }

    @Test
    void validResponse() throws Exception {
        SidecarResult r = parse("{\"scores\":[0.731,-2,1e-3],\"model\":\"marketplace\",\"version\":\"3\","
            + "\"variant\":\"live\",\"fallback\":null,\"took_us\":412,\"future_field\":{\"a\":[1]}}", 3);
        assertArrayEquals(new double[] {0.731, -2, 0.001}, r.scores());
        assertEquals("marketplace", r.model());
        assertEquals("3", r.version());
        assertEquals("live", r.variant());
        assertNull(r.fallback());
        assertEquals(412, r.tookMicros());
        assertEquals("timeout", parse("{\"scores\":[1],\"fallback\":\"timeout\"}", 1).fallback());
    }

    @Test
    void badResponsesAreClassified() {
        assertEquals(FallbackReason.WRONG_LENGTH, assertThrows(SidecarException.class, () -> parse("{\"scores\":[1,2]}", 3)).reason());
        assertEquals(FallbackReason.WRONG_LENGTH, assertThrows(SidecarException.class, () -> parse("{\"scores\":[1,2,3,4]}", 3)).reason());
        for (String bad : new String[] {"", "[]", "{\"scores\":{}}", "{\"scores\":[1,\"x\"]}", "{\"model\":\"m\"}",
            "{\"scores\":[1]", "{\"scores\":[1]} trailing", "{\"scores\":[NaN]}", "{\"scores\":[1],\"model\":5}",
            "<html>502</html>", "{\"scores\":[1e400]}"}) {
            SidecarException e = assertThrows(SidecarException.class, () -> parse(bad, 1), bad);
            assertEquals(FallbackReason.MALFORMED_RESPONSE, e.reason(), bad);
            assertTrue(e.getMessage().startsWith("malformed response"), e.getMessage());
        }
    }
}
