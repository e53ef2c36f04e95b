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
 * What the bridge's end-to-end tests share, run by each engine module against a real node process with the
 * installed plugin zip, a 2-shard index and the real rescore-sidecar binary serving a real LightGBM
 * model (es-plugin-bridge/testdata/models/bridge-test, trained by scripts/train_test_model.py).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
public abstract class BridgeFixture {
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

    /** The plugin's name in its descriptor (both engines). */
    static final String PLUGIN_NAME = "rescore-sidecar";


    EngineNode node;
    EngineRest rest;
    SidecarProcess sidecar;
    int sidecarPort;
    final Map<String, JsonNode> sources = new HashMap<>();
    /** Which shard holds each document (from per-shard searches). */
    final Map<String, Integer> shardOf = new HashMap<>();
    Path work;
    Path featureLog;

    @BeforeAll
    void startEverything() throws Exception {
        work = Path.of(System.getProperty("bridge.work", "target/it-work"));
        Path home = EngineNode.freshCopy(EngineNode.requiredPath("bridge.distribution.home"), work.resolve("home"));
        Path javaHome = EngineNode.requiredPath("bridge.node.java.home");
        Path zip = EngineNode.requiredPath("bridge.plugin.zip");
        SidecarProcess.binary(); // a clear failure before anything starts when the binary is missing
        String installed = EngineNode.installPlugin(flavor(), home, javaHome, zip, PLUGIN_NAME);
        assertTrue(installed.contains("Installed " + PLUGIN_NAME), "installer output: " + installed);
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
        settings.putAll(flavor().nodeSettings);
        node = EngineNode.start(flavor(), home, javaHome, work.resolve("node"), settings);
        rest = node.rest();
        JsonNode plugins = rest.ok("GET", "/_cat/plugins?format=json", null);
        assertTrue(plugins.toString().contains(PLUGIN_NAME), "plugin not loaded: " + plugins);
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
}
