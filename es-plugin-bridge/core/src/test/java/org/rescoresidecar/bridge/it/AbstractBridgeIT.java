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
 * The bridge's full end-to-end scenarios (the newest line of each engine runs them): a real node with
 * the installed plugin zip, a 2-shard index and the real rescore-sidecar binary serving real
 * LightGBM models (es-plugin-bridge/testdata/models).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
public abstract class AbstractBridgeIT extends BridgeFixture {
    @Test
    @Order(1)
    void orderFollowsTheModelOnEveryShard() throws Exception {
        long rescoredBefore = stats().get("rescored").asLong();
        for (int shard = 0; shard < SHARDS; shard++) {
            String pref = "?preference=_shards:" + shard;
            List<Hit> baseline = search(pref, searchBody(false, 0));
            List<Hit> rescored = search(pref, searchBody(true, TIMEOUT_MS));
            assertFollowsModel(rescored, baseline);
        }
        // the whole index: the coordinator merges both shards by the model's (comparable) scores
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
        long rescored = stats().get("rescored").asLong() - rescoredBefore;
        assertEquals(2L * SHARDS, rescored, "one sidecar call per shard per search");
    }

    @Test
    @Order(2)
    void explainWorksOnTheMultiShardIndex() throws Exception {
        JsonNode r = rest.ok("POST", "/" + INDEX + "/_search?explain=true", searchBody(true, TIMEOUT_MS));
        Set<String> shards = new HashSet<>();
        for (JsonNode h : r.get("hits").get("hits")) {
            shards.add(h.get("_shard").asText());
            JsonNode ex = h.get("_explanation");
            String d = ex.get("description").asText();
            assertTrue(d.contains("sidecar rescore") && d.contains("model bridge-test") && d.contains("version 1")
                && d.contains("variant live"), "explanation: " + ex);
            assertEquals(h.get("_score").asDouble(), ex.get("value").asDouble(), 1e-5 * Math.max(1, Math.abs(ex.get("value").asDouble())),
                "explanation value vs _score: " + h);
            assertTrue(ex.toString().contains("first-pass score"), "the first-pass explanation is kept: " + ex);
        }
        assertEquals(SHARDS, shards.size(), "hits from every shard: " + shards);
    }

    @Test
    @Order(3)
    void queryFeaturesReachTheModelExactlyAndOneRequestIdTagsEveryShard() throws Exception {
        Map<Double, Map<String, Double>> byRating = new HashMap<>();
        for (double userRating : new double[] {4.5, 0.5}) {
            for (int shard = 0; shard < SHARDS; shard++) {
                String pref = "?preference=_shards:" + shard;
                List<Hit> baseline = search(pref, searchBody(false, 0));
                ObjectNode body = searchBody(true, TIMEOUT_MS);
                ObjectNode s = (ObjectNode) body.get("rescore").get("sidecar");
                s.put("model", "bridge-query");
                s.putArray("fields").add("price");
                ((ObjectNode) s.get("query")).putObject("features").put("user_rating", userRating);
                ObjectNode q = EngineRest.JSON.createObjectNode();
                q.put("text", "cool toy").put("user_id", "u42").putObject("features").put("user_rating", userRating);
                Map<String, Double> expected = modelScores(baseline, "bridge-query", q);
                // the direct call sends price only, like the plugin: rating comes from the query's features
                assertFollowsModel(search(pref, body), baseline, expected);
                byRating.computeIfAbsent(userRating, k -> new HashMap<>()).putAll(expected);
            }
        }
        assertNotEquals(byRating.get(4.5), byRating.get(0.5), "query.features must change the model's scores");

        // request ids: the DSL's, else X-Opaque-Id, else one made on the coordinator; always the same for every shard
        Map<String, Integer> before = requestIdsInFeatureLog();
        ObjectNode explicit = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) explicit.get("rescore").get("sidecar")).put("request_id", "it-explicit-7");
        rest.ok("POST", "/" + INDEX + "/_search", explicit);
        EngineRest.Response withHeader = rest.call("POST", "/" + INDEX + "/_search", searchBody(true, TIMEOUT_MS),
            Map.of("X-Opaque-Id", "it-opaque-1"));
        assertEquals(200, withHeader.status, withHeader.raw);
        rest.ok("POST", "/" + INDEX + "/_search", searchBody(true, TIMEOUT_MS));
        Map<String, Integer> added = waitForFeatureLog(before, 3 * SHARDS);
        assertEquals(SHARDS, added.get("it-explicit-7"), "the DSL's request_id on every shard: " + added);
        assertEquals(SHARDS, added.get("it-opaque-1"), "X-Opaque-Id on every shard: " + added);
        added.remove("it-explicit-7");
        added.remove("it-opaque-1");
        assertEquals(1, added.size(), "one generated id for the third search: " + added);
        assertEquals(SHARDS, added.values().iterator().next(), "the generated id on every shard: " + added);
    }

    /** request_id → number of feature-log records. */
    Map<String, Integer> requestIdsInFeatureLog() throws IOException {
        Map<String, Integer> out = new HashMap<>();
        try (java.util.stream.Stream<Path> files = java.nio.file.Files.list(featureLog)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                for (String line : java.nio.file.Files.readAllLines(f)) {
                    if (!line.isBlank()) {
                        out.merge(EngineRest.JSON.readTree(line).get("request_id").asText(), 1, Integer::sum);
                    }
                }
            }
        }
        return out;
    }

    Map<String, Integer> waitForFeatureLog(Map<String, Integer> before, int expectedNew) throws Exception {
        long deadline = System.currentTimeMillis() + 15_000;
        while (true) {
            Map<String, Integer> now = requestIdsInFeatureLog();
            Map<String, Integer> added = new HashMap<>();
            int total = 0;
            for (Map.Entry<String, Integer> e : now.entrySet()) {
                int n = e.getValue() - before.getOrDefault(e.getKey(), 0);
                if (n > 0) {
                    added.put(e.getKey(), n);
                    total += n;
                }
            }
            if (total >= expectedNew || System.currentTimeMillis() > deadline) {
                return added;
            }
            Thread.sleep(200);
        }
    }

    @Test
    @Order(4)
    void hitsBeyondTheWindowGoBelowEveryModelScoreAndExplainSaysSo() throws Exception {
        int window = 5;
        for (int shard = 0; shard < SHARDS; shard++) {
            String pref = "?preference=_shards:" + shard;
            List<Hit> baseline = search(pref, searchBody(false, 0));
            ObjectNode body = searchBody(true, TIMEOUT_MS);
            ((ObjectNode) body.get("rescore")).put("window_size", window);
            JsonNode r = rest.ok("POST", "/" + INDEX + "/_search" + pref + "&explain=true", body);
            List<Hit> got = hits(r);
            assertEquals(baseline.size(), got.size());
            assertTrue(got.size() > window + 2, "the shard needs hits past the window: " + got.size());
            // the window: the baseline's top hits, re-ordered by the model
            assertFollowsModel(got.subList(0, window), baseline.subList(0, window));
            // the tail: the baseline's order, every score below any model score
            assertEquals(baseline.subList(window, baseline.size()).stream().map(h -> h.id).toList(),
                got.subList(window, got.size()).stream().map(h -> h.id).toList(), "tail order");
            for (int i = window; i < got.size(); i++) {
                assertTrue(got.get(i).score < -1e30, "tail hit not below the model's scores at rank " + i + ": " + got.get(i).score);
                JsonNode ex = r.get("hits").get("hits").get(i).get("_explanation");
                assertTrue(ex.get("description").asText().contains("outside the rescore window"), "tail explanation: " + ex);
                assertEquals(got.get(i).score, ex.get("value").asDouble(), Math.abs(got.get(i).score) * 1e-6,
                    "explain shows the value used: " + ex);
            }
        }
    }

    @Test
    @Order(5)
    void badParametersAreClear400s() throws Exception {
        ObjectNode noId = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) noId.get("rescore").get("sidecar")).remove("id_field");
        assert400(noId, "id_field is required");

        ObjectNode textFeature = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) textFeature.get("rescore").get("sidecar")).putArray("fields").add("item_id");
        assert400(textFeature, "must be numeric");

        ObjectNode unmapped = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) unmapped.get("rescore").get("sidecar")).put("id_field", "no_such_field");
        assert400(unmapped, "[no_such_field] is not mapped");

        ObjectNode badFeature = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) badFeature.get("rescore").get("sidecar").get("query")).putObject("features").put("user_rating", "high");
        assert400(badFeature, "query.features.user_rating must be a number");

        ObjectNode conflict = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) conflict.get("rescore").get("sidecar")).put("query_text", "something else");
        assert400(conflict, "query_text is a shorthand for query.text");
    }

    void assert400(ObjectNode body, String message) throws Exception {
        EngineRest.Response r = rest.call("POST", "/" + INDEX + "/_search", body);
        assertEquals(400, r.status, r.raw);
        assertTrue(r.raw.contains(message), r.raw);
    }

    @Test
    @Order(6)
    void aSearchsOwnErrorNeverOpensTheBreaker() throws Exception {
        long before = fallbacks(stats(), "request_error");
        for (int i = 0; i < 10; i++) {
            ObjectNode body = searchBody(true, TIMEOUT_MS);
            ((ObjectNode) body.get("rescore").get("sidecar")).put("model", "no-such-model");
            EngineRest.Response r = rest.call("POST", "/" + INDEX + "/_search", body);
            assertEquals(200, r.status, "an unknown model keeps the baseline, the search succeeds: " + r.raw);
        }
        assertEquals(before + 10L * SHARDS, fallbacks(stats(), "request_error"), "each 404 counted as the search's own error");
        assertFalse(stats().get("breaker_open").asBoolean(), "a 4xx never opens the breaker: " + stats());
        assertTrue(stats().get("last_failure").asText().contains("404"), stats().toString());
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
    }

    @Test
    @Order(7)
    void aFallenBackShardInterleavesWithTheRescoredOneAndExplainShowsTheValueUsed() throws Exception {
        // make exactly one shard's call fail: the sidecar refuses more hits than the smaller shard has
        int[] counts = new int[SHARDS];
        for (String id : shardOf.keySet()) {
            counts[shardOf.get(id)]++;
        }
        assertNotEquals(counts[0], counts[1], "the test needs shards of different sizes: " + java.util.Arrays.toString(counts));
        int failing = counts[0] > counts[1] ? 0 : 1;
        sidecar.close();
        sidecar = startSidecar(Math.min(counts[0], counts[1]));
        try {
            long mappedBefore = stats().get("window_placements").get("rank_mapped").asLong();
            ObjectNode body = searchBody(true, TIMEOUT_MS);
            body.put("size", 10);
            JsonNode r = rest.ok("POST", "/" + INDEX + "/_search?explain=true", body);
            List<Hit> top = hits(r);
            assertEquals(mappedBefore + 1, stats().get("window_placements").get("rank_mapped").asLong(),
                "the failing shard was placed on the model's recent scores: " + stats());
            int[] fromShard = new int[SHARDS];
            for (Hit h : top) {
                fromShard[shardOf.get(h.id)]++;
            }
            System.out.printf(Locale.ROOT, "MEASURED %s partial fallback: top 10 = %d from the rescored shard, %d from the fallen-back shard%n",
                flavor().launcher, fromShard[1 - failing], fromShard[failing]);
            assertTrue(fromShard[0] >= 3 && fromShard[1] >= 3, "both shards in the top 10: " + java.util.Arrays.toString(fromShard));
            for (JsonNode h : r.get("hits").get("hits")) {
                JsonNode ex = h.get("_explanation");
                assertEquals(h.get("_score").asDouble(), ex.get("value").asDouble(), 1e-5 * Math.max(1, Math.abs(ex.get("value").asDouble())),
                    "explain shows the value used: " + h);
                if (shardOf.get(h.get("_id").asText()) == failing) {
                    assertTrue(ex.get("description").asText().contains("fell back (request_error)"), "explanation: " + ex);
                }
            }
        } finally {
            sidecar.close();
            sidecar = startSidecar(null);
        }
    }

    @Test
    @Order(8)
    void slowSidecarKeepsTheBaseline() throws Exception {
        sidecar.close();
        long before = fallbacks(stats(), "timeout");
        try (HungServer hung = new HungServer(sidecarPort)) {
            assertFallbackWithinBound("slow-sidecar");
            assertTrue(hung.connections() >= 1, "the bridge never reached the hung server");
        }
        assertEquals(before + SHARDS, fallbacks(stats(), "timeout"), "one timeout per shard per search");
        sidecar = startSidecar(null);
        // back to normal as soon as the sidecar is back (two failures did not open the breaker)
        assertFalse(stats().get("breaker_open").asBoolean(), stats().toString());
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
    }

    @Test
    @Order(9)
    void stoppedSidecarKeepsTheBaselineAndExplainSaysWhy() throws Exception {
        sidecar.close();
        long before = fallbacks(stats(), "sidecar_unavailable");
        assertFallbackWithinBound("sidecar-down");
        assertEquals(before + SHARDS, fallbacks(stats(), "sidecar_unavailable"), "one fallback per shard");
        ObjectNode body = searchBody(true, SHORT_TIMEOUT_MS);
        body.put("size", 2);
        JsonNode r = rest.ok("POST", "/" + INDEX + "/_search?explain=true", body);
        for (JsonNode h : r.get("hits").get("hits")) {
            JsonNode ex = h.get("_explanation");
            String d = ex.get("description").asText();
            assertTrue(d.contains("fell back (sidecar_unavailable)") || d.contains("fell back (breaker_open)"), "explanation: " + ex);
            assertEquals(h.get("_score").asDouble(), ex.get("value").asDouble(), 1e-5 * Math.max(1, Math.abs(ex.get("value").asDouble())),
                "explain shows the value used: " + h);
        }
    }

    @Test
    @Order(10)
    void breakerOpensOnTheFailureRateAndClosesWhenTheSidecarIsBack() throws Exception {
        // the sidecar is still down: failures fill the window until their share opens the breaker
        long deadline0 = System.currentTimeMillis() + 3L * BREAKER_WINDOW_MS;
        while (!stats().get("breaker_open").asBoolean() && System.currentTimeMillis() < deadline0) {
            assertFallbackWithinBound("breaker-closing");
            Thread.sleep(100);
        }
        assertTrue(stats().get("breaker_open").asBoolean(), "breaker should be open: " + stats());
        long skipped = fallbacks(stats(), "breaker_open");
        assertFallbackWithinBound("breaker-open");
        assertTrue(fallbacks(stats(), "breaker_open") >= skipped + SHARDS, "open breaker skips every shard's call");
        sidecar = startSidecar(null);
        Thread.sleep(BREAKER_COOLDOWN_MS + 200);
        // half-open: one probe at a time; retry until the probe has closed the breaker
        long deadline = System.currentTimeMillis() + 10_000;
        while (stats().get("breaker_open").asBoolean() && System.currentTimeMillis() < deadline) {
            search("", searchBody(true, TIMEOUT_MS));
            Thread.sleep(200);
        }
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
    }
}
