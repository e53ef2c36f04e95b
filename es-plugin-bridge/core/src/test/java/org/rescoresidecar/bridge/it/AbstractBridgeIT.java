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
    static final int BREAKER_FAILURES = 6;
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

    @BeforeAll
    void startEverything() throws Exception {
        Path work = Path.of(System.getProperty("bridge.work", "target/it-work"));
        Path home = EngineNode.freshCopy(EngineNode.requiredPath("bridge.distribution.home"), work.resolve("home"));
        Path javaHome = EngineNode.requiredPath("bridge.node.java.home");
        Path zip = EngineNode.requiredPath("bridge.plugin.zip");
        SidecarProcess.binary(); // a clear failure before anything starts when the binary is missing
        String installed = EngineNode.installPlugin(flavor(), home, javaHome, zip, pluginName());
        assertTrue(installed.contains("Installed " + pluginName()), "installer output: " + installed);
        sidecarPort = EngineRest.freePort();
        sidecar = SidecarProcess.start(sidecarPort);
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("sidecar.url", "http://127.0.0.1:" + sidecarPort);
        settings.put("sidecar.breaker.failures", Integer.toString(BREAKER_FAILURES));
        settings.put("sidecar.breaker.cooldown_ms", Integer.toString(BREAKER_COOLDOWN_MS));
        settings.putAll(engineSettings());
        node = EngineNode.start(flavor(), home, javaHome, work.resolve("node"), settings);
        rest = node.rest();
        JsonNode plugins = rest.ok("GET", "/_cat/plugins?format=json", null);
        assertTrue(plugins.toString().contains(pluginName()), "plugin not loaded: " + plugins);
        indexDocuments();
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
            s.put("query_text", "cool toy");
            s.put("user_id", "u42");
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
        ObjectNode req = EngineRest.JSON.createObjectNode();
        req.put("model", "bridge-test");
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
        assertEquals(baseline.size(), rescored.size());
        assertTrue(rescored.size() >= 5, "too few hits to judge an order: " + rescored.size());
        Map<String, Double> expected = modelScores(baseline);
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
    void hitsBeyondTheWindowStayBelowInTheirOrder() throws Exception {
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
            // the tail: the baseline's order, every score below the window's lowest
            assertEquals(baseline.subList(window, baseline.size()).stream().map(h -> h.id).toList(),
                got.subList(window, got.size()).stream().map(h -> h.id).toList(), "tail order");
            for (int i = window; i < got.size(); i++) {
                assertTrue(got.get(i).score < got.get(window - 1).score, "tail hit above the window at rank " + i);
                String d = r.get("hits").get("hits").get(i).get("_explanation").get("description").asText();
                assertTrue(d.contains("outside the rescore window"), "tail explanation: " + d);
            }
        }
    }

    @Test
    @Order(4)
    void badParametersAreClear400s() throws Exception {
        ObjectNode noId = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) noId.get("rescore").get("sidecar")).remove("id_field");
        EngineRest.Response r = rest.call("POST", "/" + INDEX + "/_search", noId);
        assertEquals(400, r.status, r.raw);
        assertTrue(r.raw.contains("id_field is required"), r.raw);

        ObjectNode textFeature = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) textFeature.get("rescore").get("sidecar")).putArray("fields").add("item_id");
        r = rest.call("POST", "/" + INDEX + "/_search", textFeature);
        assertEquals(400, r.status, r.raw);
        assertTrue(r.raw.contains("must be numeric"), r.raw);

        ObjectNode unmapped = searchBody(true, TIMEOUT_MS);
        ((ObjectNode) unmapped.get("rescore").get("sidecar")).put("id_field", "no_such_field");
        r = rest.call("POST", "/" + INDEX + "/_search", unmapped);
        assertEquals(400, r.status, r.raw);
        assertTrue(r.raw.contains("[no_such_field] is not mapped"), r.raw);
    }

    /** A search whose sidecar does not help: it must return 200 with the baseline, fast. */
    long assertBaselineWithinBound(String what) throws Exception {
        List<Hit> baseline = search("", searchBody(false, 0));
        EngineRest.Response r = rest.call("POST", "/" + INDEX + "/_search", searchBody(true, SHORT_TIMEOUT_MS));
        assertEquals(200, r.status, r.raw);
        List<Hit> got = hits(r.body);
        assertEquals(baseline.stream().map(h -> h.id).toList(), got.stream().map(h -> h.id).toList(), what + ": baseline order");
        for (int i = 0; i < got.size(); i++) {
            assertEquals(baseline.get(i).score, got.get(i).score, 0.0, what + ": baseline score at rank " + i);
        }
        assertTrue(r.elapsedMillis < DEGRADED_BOUND_MS, what + ": took " + r.elapsedMillis + " ms");
        System.out.printf(Locale.ROOT, "MEASURED %s %s: search took %d ms (timeout_ms %d)%n", flavor().launcher, what,
            r.elapsedMillis, SHORT_TIMEOUT_MS);
        return r.elapsedMillis;
    }

    @Test
    @Order(5)
    void slowSidecarKeepsTheBaseline() throws Exception {
        sidecar.close();
        long before = fallbacks(stats(), "timeout");
        try (HungServer hung = new HungServer(sidecarPort)) {
            assertBaselineWithinBound("slow-sidecar");
            assertBaselineWithinBound("slow-sidecar (again)");
            assertTrue(hung.connections() >= 1, "the bridge never reached the hung server");
        }
        assertEquals(before + 2L * SHARDS, fallbacks(stats(), "timeout"), "one timeout per shard per search");
        // back to normal as soon as the sidecar is back (the breaker had not opened)
        sidecar = SidecarProcess.start(sidecarPort);
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
    }

    @Test
    @Order(6)
    void stoppedSidecarKeepsTheBaselineAndExplainSaysWhy() throws Exception {
        sidecar.close();
        long before = fallbacks(stats(), "sidecar_unavailable");
        assertBaselineWithinBound("sidecar-down");
        assertEquals(before + SHARDS, fallbacks(stats(), "sidecar_unavailable"), "one fallback per shard");
        ObjectNode body = searchBody(true, SHORT_TIMEOUT_MS);
        body.put("size", 2);
        JsonNode r = rest.ok("POST", "/" + INDEX + "/_search?explain=true", body);
        for (JsonNode h : r.get("hits").get("hits")) {
            String d = h.get("_explanation").get("description").asText();
            // the explain calls add failures: the breaker may open during this very request
            assertTrue(d.contains("baseline kept") && (d.contains("sidecar_unavailable") || d.contains("breaker_open")),
                "explanation: " + h.get("_explanation"));
        }
    }

    @Test
    @Order(7)
    void breakerOpensAfterRepeatedFailuresAndClosesWhenTheSidecarIsBack() throws Exception {
        // the sidecar is still down: failures keep counting until the breaker opens
        for (int i = 0; i < 4 && fallbacks(stats(), "breaker_open") == 0; i++) {
            assertBaselineWithinBound("breaker-closing");
        }
        assertTrue(stats().get("breaker_open").asBoolean(), "breaker should be open: " + stats());
        long skipped = fallbacks(stats(), "breaker_open");
        assertTrue(skipped > 0, "no call skipped: " + stats());
        assertBaselineWithinBound("breaker-open");
        assertTrue(fallbacks(stats(), "breaker_open") >= skipped + SHARDS, "open breaker skips every shard's call");
        sidecar = SidecarProcess.start(sidecarPort);
        Thread.sleep(BREAKER_COOLDOWN_MS + 200);
        // half-open: one probe per cool-down; retry until the probe has closed the breaker
        long deadline = System.currentTimeMillis() + 10_000;
        while (stats().get("breaker_open").asBoolean() && System.currentTimeMillis() < deadline) {
            search("", searchBody(true, TIMEOUT_MS));
            Thread.sleep(200);
        }
        assertFollowsModel(search("", searchBody(true, TIMEOUT_MS)), search("", searchBody(false, 0)));
    }
}
