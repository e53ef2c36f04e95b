package org.rescoresidecar.bridge.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The {@code sidecar} rescorer's parameters as they appear in the search DSL. Both engines parse
 * the object into a generic map with their own XContent parser and hand it to {@link #fromDsl};
 * rendering ({@link #toDsl}) and the transport wire ({@link #toJson}/{@link #fromJson}) go through
 * the same map, so both engines accept, reject and round-trip exactly the same requests.
 *
 * <p>Everything the sidecar's HTTP API takes travels unchanged: {@code query} (text, user_id,
 * session_id, features, attributes), {@code context} and {@code request_id}; {@code query_text}
 * and {@code user_id} at the top level are shorthands for {@code query.text} and
 * {@code query.user_id}.
 */
public record RescoreParams(String model, String idField, Map<String, String> fields, SidecarQuery query,
                            Map<String, String> context, String requestId, Integer timeoutMs, ScoreMode scoreMode,
                            float queryWeight, float modelWeight) {
    public static final String NAME = "sidecar";
    /** A hard ceiling on the per-request budget: a search thread never waits longer than this. */
    public static final int MAX_TIMEOUT_MS = 10_000;
    public static final int MAX_FIELDS = 256;
    /** The sidecar's own limit on {@code request_id} (bytes of UTF-8). */
    public static final int MAX_REQUEST_ID_BYTES = 256;

    static final Set<String> KEYS = Set.of("model", "id_field", "fields", "query", "query_text", "user_id", "context",
        "request_id", "timeout_ms", "score_mode", "query_weight", "model_weight");
    static final Set<String> QUERY_KEYS = Set.of("text", "user_id", "session_id", "features", "attributes");

    public RescoreParams {
        fields = DslValues.frozen(fields);
        query = query == null ? SidecarQuery.EMPTY : query;
        context = DslValues.frozen(context);
        scoreMode = scoreMode == null ? ScoreMode.REPLACE : scoreMode;
        validate(model, idField, fields, requestId, timeoutMs, scoreMode, queryWeight, modelWeight);
    }

    private static void validate(String model, String idField, Map<String, String> fields, String requestId, Integer timeoutMs,
                                 ScoreMode scoreMode, float queryWeight, float modelWeight) {
        if (idField == null || idField.isEmpty()) {
            throw DslValues.error("id_field is required (a keyword field holding the item id)");
        }
        if (model != null && model.isEmpty()) {
            throw DslValues.error("model must not be empty (omit it to use the sidecar's default)");
        }
        if (fields.size() > MAX_FIELDS) {
            throw DslValues.error("fields: at most " + MAX_FIELDS + " fields, got " + fields.size());
        }
        if (requestId != null && (requestId.isEmpty()
            || requestId.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_REQUEST_ID_BYTES)) {
            throw DslValues.error("request_id must be 1.." + MAX_REQUEST_ID_BYTES + " bytes");
        }
        if (timeoutMs != null && (timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS)) {
            throw DslValues.error("timeout_ms must be in 1.." + MAX_TIMEOUT_MS + ", got " + timeoutMs);
        }
        if (!Float.isFinite(queryWeight) || !Float.isFinite(modelWeight)) {
            throw DslValues.error("query_weight and model_weight must be finite numbers");
        }
        if (scoreMode == ScoreMode.REPLACE && (queryWeight != 1.0f || modelWeight != 1.0f)) {
            throw DslValues.error("query_weight/model_weight only apply with score_mode \"weighted\"");
        }
    }

    /** Parameters with the defaults of everything but the id field (tests, programmatic use). */
    public static RescoreParams of(String model, String idField) {
        return new RescoreParams(model, idField, Map.of(), SidecarQuery.EMPTY, Map.of(), null, null, ScoreMode.REPLACE, 1f, 1f);
    }

    /** Parses the {@code sidecar} object as the engine's parser read it (a map of JSON values). */
    public static RescoreParams fromDsl(Map<String, Object> dsl) {
        for (String key : dsl.keySet()) {
            if (!KEYS.contains(key)) {
                throw DslValues.error("unknown key [" + key + "]; known keys: " + sorted(KEYS));
            }
        }
        Map<String, Object> q = DslValues.object(dsl.get("query"), "query");
        for (String key : q.keySet()) {
            if (!QUERY_KEYS.contains(key)) {
                throw DslValues.error("unknown key [query." + key + "]; known keys of query: " + sorted(QUERY_KEYS));
            }
        }
        String text = shorthand(DslValues.string(dsl.get("query_text"), "query_text"), DslValues.string(q.get("text"), "query.text"),
            "query_text", "query.text");
        String userId = shorthand(DslValues.string(dsl.get("user_id"), "user_id"), DslValues.string(q.get("user_id"), "query.user_id"),
            "user_id", "query.user_id");
        SidecarQuery query = new SidecarQuery(text, userId, DslValues.string(q.get("session_id"), "query.session_id"),
            DslValues.numbers(q.get("features"), "query.features"), DslValues.strings(q.get("attributes"), "query.attributes"));
        String mode = DslValues.string(dsl.get("score_mode"), "score_mode");
        ScoreMode scoreMode = mode == null ? ScoreMode.REPLACE : ScoreMode.fromWireName(mode);
        Float qw = DslValues.floatValue(dsl.get("query_weight"), "query_weight");
        Float mw = DslValues.floatValue(dsl.get("model_weight"), "model_weight");
        return new RescoreParams(DslValues.string(dsl.get("model"), "model"), DslValues.string(dsl.get("id_field"), "id_field"),
            DslValues.fields(dsl.get("fields")), query, DslValues.strings(dsl.get("context"), "context"),
            DslValues.string(dsl.get("request_id"), "request_id"), DslValues.integer(dsl.get("timeout_ms"), "timeout_ms"), scoreMode,
            qw == null ? 1f : qw, mw == null ? 1f : mw);
    }

    private static String shorthand(String shortForm, String longForm, String shortKey, String longKey) {
        if (shortForm != null && longForm != null && !shortForm.equals(longForm)) {
            throw DslValues.error(shortKey + " is a shorthand for " + longKey + ": give one of them, or the same value in both");
        }
        return longForm != null ? longForm : shortForm;
    }

    private static List<String> sorted(Set<String> keys) {
        List<String> out = new ArrayList<>(keys);
        out.sort(null);
        return out;
    }

    /** The canonical DSL object (long forms only), which {@link #fromDsl} parses back to an equal value. */
    public Map<String, Object> toDsl() {
        Map<String, Object> out = new LinkedHashMap<>();
        if (model != null) {
            out.put("model", model);
        }
        out.put("id_field", idField);
        if (!fields.isEmpty()) {
            boolean sameNames = fields.entrySet().stream().allMatch(e -> e.getKey().equals(e.getValue()));
            out.put("fields", sameNames ? new ArrayList<>(fields.keySet()) : new LinkedHashMap<>(fields));
        }
        if (!query.isEmpty()) {
            Map<String, Object> q = new LinkedHashMap<>();
            putIfPresent(q, "text", query.text());
            putIfPresent(q, "user_id", query.userId());
            putIfPresent(q, "session_id", query.sessionId());
            if (!query.features().isEmpty()) {
                q.put("features", new LinkedHashMap<>(query.features()));
            }
            if (!query.attributes().isEmpty()) {
                q.put("attributes", new LinkedHashMap<>(query.attributes()));
            }
            out.put("query", q);
        }
        if (!context.isEmpty()) {
            out.put("context", new LinkedHashMap<>(context));
        }
        putIfPresent(out, "request_id", requestId);
        putIfPresent(out, "timeout_ms", timeoutMs);
        out.put("score_mode", scoreMode.wireName());
        if (scoreMode == ScoreMode.WEIGHTED) {
            out.put("query_weight", queryWeight);
            out.put("model_weight", modelWeight);
        }
        return out;
    }

    private static void putIfPresent(Map<String, Object> map, String key, Object value) {
        if (value != null) {
            map.put(key, value);
        }
    }

    /** The transport wire form: the canonical DSL as JSON, validated again when read. */
    public String toJson() {
        return JsonValues.write(toDsl());
    }

    public static RescoreParams fromJson(String json) {
        return fromDsl(JsonValues.readObject(json));
    }

    /** The same parameters for the shards of one search, tagged with the search's id. */
    public RescoreParams withRequestId(String id) {
        return new RescoreParams(model, idField, fields, query, context, id, timeoutMs, scoreMode, queryWeight, modelWeight);
    }

    /** The doc-value fields to read, in the order of {@link #featureNames()}. */
    public List<String> fieldNames() {
        return new ArrayList<>(fields.values());
    }

    public List<String> featureNames() {
        return new ArrayList<>(fields.keySet());
    }

    /** The score a window hit gets from its first-pass score and the model's score. */
    public float combine(float original, double modelScore) {
        if (scoreMode == ScoreMode.REPLACE) {
            return (float) modelScore;
        }
        return (float) (queryWeight * (double) original + modelWeight * modelScore);
    }

    @Override
    public String toString() {
        return "sidecar{model=" + model + ", id_field=" + idField + ", fields=" + fields + ", timeout_ms=" + timeoutMs
            + ", score_mode=" + scoreMode.wireName() + ", request_id=" + requestId + "}";
    }
}
