package org.rescoresidecar.bridge.core;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RescoreParamsTest {
    static Map<String, Object> json(String s) {
        try {
            return new ObjectMapper().readValue(s, new TypeReference<java.util.LinkedHashMap<String, Object>>() {});
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    static RescoreParams parse(String s) {
        return RescoreParams.fromDsl(json(s));
    }

    static String error(String s) {
        return assertThrows(IllegalArgumentException.class, () -> parse(s)).getMessage();
    }

    static final String FULL = "{\"model\": \"marketplace\", \"id_field\": \"item_id\", \"fields\": {\"price\": \"price_eur\"},"
        + " \"query\": {\"text\": \"cool toys\", \"user_id\": \"u42\", \"session_id\": \"s1\","
        + " \"features\": {\"intent_category\": 12, \"user_budget\": 40.5, \"gone\": null}, \"attributes\": {\"device\": \"mobile\"}},"
        + " \"context\": {\"index\": \"listings\"}, \"request_id\": \"req-9\", \"timeout_ms\": 30,"
        + " \"score_mode\": \"weighted\", \"query_weight\": 0.5, \"model_weight\": 2}";

    @Test
    void theWholeContractParses() {
        RescoreParams p = parse(FULL);
        assertEquals("marketplace", p.model());
        assertEquals(Map.of("price", "price_eur"), p.fields());
        assertEquals(List.of("price"), p.featureNames());
        assertEquals(List.of("price_eur"), p.fieldNames());
        assertEquals("cool toys", p.query().text());
        assertEquals("u42", p.query().userId());
        assertEquals("s1", p.query().sessionId());
        assertEquals(Map.of("intent_category", 12.0, "user_budget", 40.5), p.query().features(), "null means absent");
        assertEquals(Map.of("device", "mobile"), p.query().attributes());
        assertEquals(Map.of("index", "listings"), p.context());
        assertEquals("req-9", p.requestId());
        assertEquals(30, p.timeoutMs());
        assertEquals(ScoreMode.WEIGHTED, p.scoreMode());
        assertEquals(0.5f, p.queryWeight());
        assertEquals(2f, p.modelWeight());
    }

    @Test
    void shorthandsAndTheirConflicts() {
        RescoreParams a = parse("{\"id_field\": \"id\", \"query_text\": \"q\", \"user_id\": \"u\"}");
        RescoreParams b = parse("{\"id_field\": \"id\", \"query\": {\"text\": \"q\", \"user_id\": \"u\"}}");
        assertEquals(a, b);
        assertEquals(a, parse("{\"id_field\": \"id\", \"query_text\": \"q\", \"query\": {\"text\": \"q\", \"user_id\": \"u\"}}"),
            "the same value in both forms is fine");
        assertTrue(error("{\"id_field\": \"id\", \"query_text\": \"a\", \"query\": {\"text\": \"b\"}}")
            .contains("query_text is a shorthand for query.text"));
        assertTrue(error("{\"id_field\": \"id\", \"user_id\": \"a\", \"query\": {\"user_id\": \"b\"}}")
            .contains("user_id is a shorthand for query.user_id"));
        assertEquals(List.of("price", "rating"), parse("{\"id_field\": \"id\", \"fields\": [\"price\", \"rating\"]}").featureNames());
    }

    @Test
    void canonicalFormAndJsonWireRoundTrip() {
        for (String s : new String[] {FULL, "{\"id_field\": \"id\"}", "{\"id_field\": \"id\", \"fields\": [\"a\", \"b\"], \"user_id\": \"u\"}"}) {
            RescoreParams p = parse(s);
            assertEquals(p, RescoreParams.fromDsl(p.toDsl()), s);
            assertEquals(p, RescoreParams.fromJson(p.toJson()), s);
            assertEquals(p.hashCode(), RescoreParams.fromJson(p.toJson()).hashCode());
        }
        RescoreParams p = parse(FULL);
        assertNotEquals(p, p.withRequestId("other"));
        assertEquals("other", p.withRequestId("other").requestId());
        assertNull(parse("{\"id_field\": \"id\"}").requestId());
    }

    @Test
    void badParametersAreClearErrors() {
        assertTrue(error("{\"model\": \"m\"}").contains("id_field is required"));
        assertTrue(error("{\"id_field\": \"x\", \"modle\": \"m\"}").contains("unknown key [modle]"));
        assertTrue(error("{\"id_field\": \"x\", \"query\": {\"txt\": \"m\"}}").contains("unknown key [query.txt]"));
        assertTrue(error("{\"id_field\": \"x\", \"fields\": [\"a\", \"a\"]}").contains("duplicate"));
        assertTrue(error("{\"id_field\": \"x\", \"fields\": 3}").contains("fields must be a list"));
        assertTrue(error("{\"id_field\": \"x\", \"timeout_ms\": 0}").contains("timeout_ms must be in 1..10000"));
        assertTrue(error("{\"id_field\": \"x\", \"timeout_ms\": 10001}").contains("timeout_ms"));
        assertTrue(error("{\"id_field\": \"x\", \"timeout_ms\": 2.5}").contains("timeout_ms must be an integer"));
        assertTrue(error("{\"id_field\": \"x\", \"query\": {\"features\": {\"a\": \"1\"}}}")
            .contains("query.features.a must be a number"));
        assertTrue(error("{\"id_field\": \"x\", \"query\": {\"features\": [1]}}").contains("query.features must be an object"));
        assertTrue(error("{\"id_field\": \"x\", \"query\": {\"attributes\": {\"d\": 1}}}")
            .contains("query.attributes.d must be a string"));
        assertTrue(error("{\"id_field\": \"x\", \"context\": {\"c\": true}}").contains("context.c must be a string"));
        assertTrue(error("{\"id_field\": \"x\", \"request_id\": \"" + "r".repeat(257) + "\"}").contains("request_id must be 1..256"));
        assertTrue(error("{\"id_field\": \"x\", \"query_weight\": 2}").contains("only apply with score_mode"));
        assertTrue(error("{\"id_field\": \"x\", \"score_mode\": \"multiply\"}").contains("score_mode"));
        assertTrue(error("{\"id_field\": \"x\", \"model\": \"\"}").contains("model must not be empty"));
    }

    @Test
    void nodeSettingsParseFromTheirStringsWithTheSettingNamed() {
        Map<String, String> defaults = new java.util.HashMap<>();
        SidecarSettings.KEYS.forEach(k -> defaults.put(k.name(), k.defaultValue()));
        SidecarSettings d = SidecarSettings.fromValues(defaults::get);
        assertEquals(SidecarSettings.defaults(), d);
        Map<String, String> bad = new java.util.HashMap<>(defaults);
        bad.put("sidecar.breaker.min_calls", "ten");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SidecarSettings.fromValues(bad::get)).getMessage()
            .contains("sidecar.breaker.min_calls must be an integer, got [ten]"));
        bad.put("sidecar.breaker.min_calls", "10");
        bad.put("sidecar.breaker.failure_rate", "1.5");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SidecarSettings.fromValues(bad::get)).getMessage()
            .contains("sidecar.breaker.failure_rate must be in (0, 1]"));
        bad.put("sidecar.breaker.failure_rate", "0.5");
        bad.put("sidecar.fallback_scores", "zero");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SidecarSettings.fromValues(bad::get)).getMessage()
            .contains("sidecar.fallback_scores"));
    }

    @Test
    void settingsOnlyAcceptLoopback() {
        assertEquals("http://127.0.0.1:9209/v1/rescore", SidecarSettings.defaults().rescoreUri().toString());
        assertEquals("http://localhost:1234/v1/rescore", SidecarSettings.rescoreUri("http://localhost:1234").toString());
        assertEquals("http://[::1]:1234/v1/rescore", SidecarSettings.rescoreUri("http://[::1]:1234").toString());
        assertThrows(IllegalArgumentException.class, () -> SidecarSettings.rescoreUri("http://10.0.0.1:9209"));
        assertThrows(IllegalArgumentException.class, () -> SidecarSettings.rescoreUri("http://example.com:9209"));
        assertThrows(IllegalArgumentException.class, () -> SidecarSettings.rescoreUri("https://127.0.0.1:9209"));
        assertThrows(IllegalArgumentException.class, () -> SidecarSettings.rescoreUri("http://127.0.0.1"));
        assertThrows(IllegalArgumentException.class, () -> SidecarSettings.rescoreUri("http://127.0.0.1:9209/x"));
        assertThrows(IllegalArgumentException.class, () -> ShardRescore.FallbackMode.fromSetting("zero"));
    }
}
