package org.rescoresidecar.bridge.core;

import java.util.List;
import java.util.Objects;

/**
 * The {@code sidecar} rescorer's parameters as they appear in the search DSL. Engine modules parse
 * and serialise these with their own XContent and stream classes; validation lives here so both
 * engines reject the same requests with the same messages.
 */
public final class RescoreParams {
    public static final String NAME = "sidecar";
    /** A hard ceiling on the per-request budget: a search thread never waits longer than this. */
    public static final int MAX_TIMEOUT_MS = 10_000;
    public static final int MAX_FIELDS = 256;

    private final String model;
    private final String idField;
    private final List<String> fields;
    private final String queryText;
    private final String userId;
    private final Integer timeoutMs;
    private final ScoreMode scoreMode;
    private final float queryWeight;
    private final float modelWeight;

    public RescoreParams(String model, String idField, List<String> fields, String queryText, String userId,
                         Integer timeoutMs, ScoreMode scoreMode, Float queryWeight, Float modelWeight) {
        this.model = model;
        this.idField = idField;
        this.fields = fields == null ? List.of() : List.copyOf(fields);
        this.queryText = queryText;
        this.userId = userId;
        this.timeoutMs = timeoutMs;
        this.scoreMode = scoreMode == null ? ScoreMode.REPLACE : scoreMode;
        this.queryWeight = queryWeight == null ? 1.0f : queryWeight;
        this.modelWeight = modelWeight == null ? 1.0f : modelWeight;
        validate();
    }

    private void validate() {
        if (idField == null || idField.isEmpty()) {
            throw new IllegalArgumentException("[sidecar] id_field is required (a keyword field holding the item id)");
        }
        if (model != null && model.isEmpty()) {
            throw new IllegalArgumentException("[sidecar] model must not be empty (omit it to use the sidecar's default)");
        }
        if (fields.size() > MAX_FIELDS) {
            throw new IllegalArgumentException("[sidecar] fields: at most " + MAX_FIELDS + " fields, got " + fields.size());
        }
        for (String f : fields) {
            if (f == null || f.isEmpty()) {
                throw new IllegalArgumentException("[sidecar] fields must be non-empty field names");
            }
        }
        if (fields.stream().distinct().count() != fields.size()) {
            throw new IllegalArgumentException("[sidecar] fields contains a duplicate name: " + fields);
        }
        if (timeoutMs != null && (timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS)) {
            throw new IllegalArgumentException("[sidecar] timeout_ms must be in 1.." + MAX_TIMEOUT_MS + ", got " + timeoutMs);
        }
        if (!Float.isFinite(queryWeight) || !Float.isFinite(modelWeight)) {
            throw new IllegalArgumentException("[sidecar] query_weight and model_weight must be finite numbers");
        }
        if (scoreMode == ScoreMode.REPLACE && (queryWeight != 1.0f || modelWeight != 1.0f)) {
            throw new IllegalArgumentException("[sidecar] query_weight/model_weight only apply with score_mode \"weighted\"");
        }
    }

    public String model() { return model; }
    public String idField() { return idField; }
    public List<String> fields() { return fields; }
    public String queryText() { return queryText; }
    public String userId() { return userId; }
    /** The request's timeout, or null to use the node's default ({@code sidecar.timeout}). */
    public Integer timeoutMs() { return timeoutMs; }
    public ScoreMode scoreMode() { return scoreMode; }
    public float queryWeight() { return queryWeight; }
    public float modelWeight() { return modelWeight; }

    /** The score a window hit gets from its first-pass score and the model's score. */
    public float combine(float original, double modelScore) {
        if (scoreMode == ScoreMode.REPLACE) {
            return (float) modelScore;
        }
        return (float) (queryWeight * (double) original + modelWeight * modelScore);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) return true;
        if (!(o instanceof RescoreParams)) return false;
        RescoreParams p = (RescoreParams) o;
        return Objects.equals(model, p.model) && idField.equals(p.idField) && fields.equals(p.fields)
            && Objects.equals(queryText, p.queryText) && Objects.equals(userId, p.userId)
            && Objects.equals(timeoutMs, p.timeoutMs) && scoreMode == p.scoreMode
            && Float.compare(queryWeight, p.queryWeight) == 0 && Float.compare(modelWeight, p.modelWeight) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(model, idField, fields, queryText, userId, timeoutMs, scoreMode, queryWeight, modelWeight);
    }

    @Override
    public String toString() {
        return "sidecar{model=" + model + ", id_field=" + idField + ", fields=" + fields + ", timeout_ms=" + timeoutMs
            + ", score_mode=" + scoreMode.wireName() + "}";
    }
}
