package org.rescoresidecar.bridge.core;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RescoreParamsTest {
    static RescoreParams params(String idField, List<String> fields, Integer timeout) {
        return new RescoreParams("marketplace", idField, fields, "cool toys", "u42", timeout, null, null, null);
    }

    @Test
    void defaultsAndEquality() {
        RescoreParams a = params("item_id", List.of("price"), 30);
        assertEquals(ScoreMode.REPLACE, a.scoreMode());
        assertEquals(a, params("item_id", List.of("price"), 30));
        assertEquals(a.hashCode(), params("item_id", List.of("price"), 30).hashCode());
        assertNotEquals(a, params("item_id", List.of("price"), 31));
    }

    @Test
    void badParametersAreClearErrors() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(null, List.of(), 30))
            .getMessage().contains("id_field is required"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params("id", List.of("a", "a"), 30))
            .getMessage().contains("duplicate"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params("id", List.of(), 0))
            .getMessage().contains("timeout_ms must be in 1..10000"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params("id", List.of(), 10_001))
            .getMessage().contains("timeout_ms"));
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> new RescoreParams(null, "id", null, null, null, null, ScoreMode.REPLACE, 2f, null))
            .getMessage().contains("only apply with score_mode"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ScoreMode.fromWireName("multiply"))
            .getMessage().contains("score_mode"));
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
    }
}
