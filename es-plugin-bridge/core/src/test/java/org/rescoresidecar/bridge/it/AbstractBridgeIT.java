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
 * The bridge's end-to-end scenarios, run by each engine module against a real node process with the
 * installed plugin zip, a 2-shard index and the real rescore-sidecar binary serving a real LightGBM
 * model (es-plugin-bridge/testdata/models/bridge-test, trained by scripts/train_test_model.py).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
public abstract class AbstractBridgeIT {
    static final String INDEX = "items";
    static final int DOCS = 40;
    static final int SHARDS = 2;
    static final int BREAKER_MIN_CALLS = 4;
    /** Short, so that the successes of earlier tests leave the window quickly. */
    static final int BREAKER_WINDOW_MS = 2000;
    static final int BREAKER_COOLDOWN_MS = 1500;
    /** Generous: a cold JVM's first calls; the fail-safe tests use a short one. */
    static final int TIMEOUT_MS = 5000;
    static final int SHORT_TIMEOUT_MS = 300;
    /** The bound for a degraded search: timeout + 2 s (measured figures go to the docs). */
    static final long DEGRADED_BOUND_MS = SHORT_TIMEOUT_MS + 2000;

    protected abstract EngineNode.Flavor flavor();

    protected abstract String pluginName();

    /** Engine-specific node settings. */
    protected Map<String, String> engineSettings() {
        return Map.of();
    }

    private EngineNode node;
    private EngineRest rest;
    private SidecarProcess sidecar;
    private int sidecarPort;
    private final Map<String, JsonNode> sources = new HashMap<>();
    /** Which shard holds each document (from per-shard searches). */
    private final Map<String, Integer> shardOf = new HashMap<>();
    private Path work;
    private Path featureLog;

    @BeforeAll
    void startEverything() throws Exception {
        work = Path.of(System.getProperty("bridge.work", "target/it-work"));
        Path home = EngineNode.freshCopy(EngineNode.requiredPath("bridge.distribution.home"), work.resolve("home"));
        Path javaHome = EngineNode.requiredPath("bridge.node.java.home");
        Path zip = EngineNode.requiredPath("bridge.plugin.zip");
        SidecarProcess.binary(); // a clear failure before anything starts when the binary is missing
        String installed = EngineNode.installPlugin(flavor(), home, javaHome, zip, pluginName());
        assertTrue(installed.contains("Installed " + pluginName()), "installer output: " + installed);
        sidecarPort = EngineRest.freePort();
        featureLog = work.resolve("feature-log");
        sidecar = startSidecar(null);
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("sidecar.url", "http://127.0.0.1:" + sidecarPort);
        settings.put("sidecar.breaker.min_calls", Integer.toString(BREAKER_MIN_CALLS));
        settings.put("sidecar.breaker.window_ms", Integer.toString(BREAKER_WINDOW_MS));
        settings.put("sidecar.breaker.cooldown_ms", Integer.toString(BREAKER_COOLDOWN_MS));
        settings.put("sidecar.breaker.probes", "1");
        settings.put("sidecar.breaker.ramp_ms", "0");
        settings.putAll(engineSettings());
        node = EngineNode.start(flavor(), home, javaHome, work.resolve("node"), settings);
        rest = node.rest();
        JsonNode plugins = rest.ok("GET", "/_cat/plugins?format=json", null);
        assertTrue(plugins.toString().contains(pluginName()), "plugin not loaded: " + plugins);
        indexDocuments();
        for (int shard = 0; shard < SHARDS; shard++) {
            for (Hit h : search("?preference=_shards:" + shard, searchBody(false, 0))) {
                shardOf.put(h.id, shard);
            }
        }
        assertEquals(DOCS, shardOf.size(), "every document found on one shard");
    }

    /** The sidecar with the feature log on (every request) and, when given, a {@code max_hits} limit. */
    SidecarProcess startSidecar(Integer maxHits) throws IOException, InterruptedException {
        java.nio.file.Files.createDirectories(featureLog);
        StringBuilder toml = new StringBuilder();
        if (maxHits != null) {
            toml.append("[serving]\nmax_hits = ").append(maxHits).append("\n");
        }
        toml.append("[monitoring.feature_log]\nenabled = true\nsample_rate = 1.0\ndir = \"").append(featureLog).append("\"\n");
        Path config = work.resolve("sidecar.toml");
        java.nio.file.Files.writeString(config, toml.toString());
        return SidecarProcess.start(sidecarPort, config);
    }

    @AfterAll
    void stopEverything() throws Exception {
        if (sidecar != null) {
            sidecar.close();
        }
        if (node != null) {
            node.close();
        }
    }

    private void indexDocuments() throws IOException, InterruptedException {
        ObjectNode create = EngineRest.JSON.createObjectNode();
        create.putObject("settings").put("number_of_shards", SHARDS).put("number_of_replicas", 0);
        ObjectNode props = create.putObject("mappings").putObject("properties");
        props.putObject("title").put("type", "text");
        props.putObject("item_id").put("type", "keyword");
        props.putObject("price").put("type", "double");
        props.putObject("rating").put("type", "float");
        rest.ok("PUT", "/" + INDEX, create);
        Random rnd = new Random(42);
        StringBuilder bulk = new StringBuilder();
        String[] filler = {"red", "blue", "wooden", "plastic", "vintage", "new", "boxed", "kids", "set"};
        for (int i = 0; i < DOCS; i++) {
            StringBuilder title = new StringBuilder();
            for (int k = 0; k <= i % 4; k++) {
                title.append("cool toy ");
            }
            for (int k = 0; k < i % 7; k++) {
                title.append(filler[(i + k) % filler.length]).append(' ');
            }
            ObjectNode doc = EngineRest.JSON.createObjectNode();
            String id = String.format(Locale.ROOT, "item-%02d", i);
            doc.put("title", title.toString().trim());
            doc.put("item_id", id);
            doc.put("price", 1 + rnd.nextInt(499));
            doc.put("rating", Math.round(rnd.nextDouble() * 40) / 8.0); // multiples of 1/8: exact as float
            sources.put(id, doc);
            bulk.append("{\"index\":{\"_id\":\"").append(id).append("\"}}\n").append(doc).append('\n');
        }
        JsonNode r = rest.ok("POST", "/" + INDEX + "/_bulk?refresh=true", bulk.toString());
        assertEquals(false, r.get("errors").asBoolean(), r.toString());
        JsonNode count = rest.ok("GET", "/" + INDEX + "/_count", null);
        assertEquals(DOCS, count.get("count").asInt());
    }

    ObjectNode searchBody(boolean rescore, int timeoutMs) {
        ObjectNode body = EngineRest.JSON.createObjectNode();
        body.put("size", DOCS);
        body.putObject("query").putObject("match").put("title", "cool toy");
        if (rescore) {
            ObjectNode r = body.putObject("rescore");
            r.put("window_size", 50);
            ObjectNode s = r.putObject("sidecar");
            s.put("model", "bridge-test");
            s.put("id_field", "item_id");
            s.putArray("fields").add("price").add("rating");
            s.putObject("query").put("text", "cool toy").put("user_id", "u42");
            s.put("timeout_ms", timeoutMs);
        }
        return body;
    }

    static final class Hit {
        final String id;
        final double score;
        final String shard;

        Hit(JsonNode h) {
            id = h.get("_id").asText();
            score = h.get("_score").asDouble();
            shard = h.has("_shard") ? h.get("_shard").asText() : null;
        }
    }

    List<Hit> hits(JsonNode response) {
        assertEquals(0, response.get("_shards").get("failed").asInt(), "shard failures: " + response);
        List<Hit> out = new ArrayList<>();
        for (JsonNode h : response.get("hits").get("hits")) {
            out.add(new Hit(h));
        }
        return out;
    }

    List<Hit> search(String params, ObjectNode body) throws IOException, InterruptedException {
        return hits(rest.ok("POST", "/" + INDEX + "/_search" + params, body));
    }

    /** The model's scores for these hits, asked of the sidecar directly (its score is LightGBM's predict). */
    Map<String, Double> modelScores(List<Hit> baseline) throws IOException, InterruptedException {
        return modelScores(baseline, "bridge-test", null);
    }

    Map<String, Double> modelScores(List<Hit> baseline, String model, ObjectNode query) throws IOException, InterruptedException {
        ObjectNode req = EngineRest.JSON.createObjectNode();
        req.put("model", model);
        if (query != null) {
            req.set("query", query);
        }
        ArrayNode hits = req.putArray("hits");
        for (Hit h : baseline) {
            ObjectNode o = hits.addObject();
            o.put("id", h.id);
            o.put("score", (float) h.score);
            o.putObject("features").put("price", sources.get(h.id).get("price").asDouble())
                .put("rating", sources.get(h.id).get("rating").asDouble());
        }
        JsonNode r = new EngineRest("http://127.0.0.1:" + sidecarPort).ok("POST", "/v1/rescore", req);
        Map<String, Double> out = new HashMap<>();
        for (int i = 0; i < baseline.size(); i++) {
            out.put(baseline.get(i).id, r.get("scores").get(i).asDouble());
        }
        return out;
    }

    void assertFollowsModel(List<Hit> rescored, List<Hit> baseline) throws IOException, InterruptedException {
        assertFollowsModel(rescored, baseline, modelScores(baseline));
    }

    void assertFollowsModel(List<Hit> rescored, List<Hit> baseline, Map<String, Double> expected) {
        assertEquals(baseline.size(), rescored.size());
        assertTrue(rescored.size() >= 5, "too few hits to judge an order: " + rescored.size());
        for (int i = 0; i < rescored.size(); i++) {
            Hit h = rescored.get(i);
            float want = (float) (double) expected.get(h.id);
            assertEquals(want, (float) h.score, 1e-6f * Math.max(1f, Math.abs(want)), "score of " + h.id + " at rank " + i);
            if (i > 0) {
                assertTrue(rescored.get(i - 1).score >= h.score, "not sorted by the model's score at rank " + i);
            }
        }
        List<String> modelIds = rescored.stream().map(x -> x.id).toList();
        List<String> bm25Ids = baseline.stream().map(x -> x.id).toList();
        assertNotEquals(bm25Ids, modelIds, "the model's order should differ from BM25's (else this test proves nothing)");
    }

    JsonNode stats() throws IOException, InterruptedException {
        return rest.ok("GET", "/_sidecar/stats", null);
    }

    static long fallbacks(JsonNode stats, String reason) {
        return stats.get("fallbacks").get(reason).asLong();
    }

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

    /** A search whose sidecar does not help: 200, each shard's hits in its first-pass order, fast. */
    long assertFallbackWithinBound(String what) throws Exception {
        EngineRest.Response r = rest.call("POST", "/" + INDEX + "/_search", searchBody(true, SHORT_TIMEOUT_MS));
        assertEquals(200, r.status, r.raw);
        List<Hit> got = hits(r.body);
        assertEquals(DOCS, got.size(), what);
        for (int shard = 0; shard < SHARDS; shard++) {
            final int k = shard;
            List<String> baseline = search("?preference=_shards:" + shard, searchBody(false, 0)).stream().map(h -> h.id).toList();
            List<String> merged = got.stream().filter(h -> shardOf.get(h.id) == k).map(h -> h.id).toList();
            assertEquals(baseline, merged, what + ": shard " + shard + " keeps its first-pass order");
        }
        assertTrue(r.elapsedMillis < DEGRADED_BOUND_MS, what + ": took " + r.elapsedMillis + " ms");
        System.out.printf(Locale.ROOT, "MEASURED %s %s: search took %d ms (timeout_ms %d)%n", flavor().launcher, what,
            r.elapsedMillis, SHORT_TIMEOUT_MS);
        return r.elapsedMillis;
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
