package org.rescoresidecar.bridge.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The smoke test of an older engine line: the zip installs with the engine's own installer, one
 * search is rescored exactly as the sidecar scores it, and one search with the sidecar down keeps
 * each shard's first-pass order.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
public abstract class AbstractSmokeIT extends BridgeFixture {
    @Test
    @Order(1)
    void oneRescoredSearch() throws Exception {
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
        assertEquals(SHARDS, stats().get("rescored").asLong(), "one sidecar call per shard");
    }

    @Test
    @Order(2)
    void oneFallback() throws Exception {
        sidecar.close();
        assertFallbackWithinBound("sidecar-down");
        assertEquals(SHARDS, fallbacks(stats(), "sidecar_unavailable"), "one fallback per shard");
    }
}
