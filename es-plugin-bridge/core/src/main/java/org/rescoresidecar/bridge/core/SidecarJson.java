package org.rescoresidecar.bridge.core;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;

/** The wire format of {@code POST /v1/rescore} (docs/api.md): request writer and strict response reader. */
public final class SidecarJson {
    private static final JsonFactory FACTORY = JsonValues.FACTORY;

    private SidecarJson() {}

    public static byte[] writeRequest(RescoreParams params, List<HitInput> hits, int sidecarTimeoutMs) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(64 + hits.size() * (48 + 24 * params.fields().size()));
        try {
            writeRequest(out, params, hits, sidecarTimeoutMs);
        } catch (IOException e) {
            throw new UncheckedIOException(e); // in-memory stream: not reachable
        }
        return out.toByteArray();
    }

    /** Streams the request body: the DSL's query, context and request id unchanged, one object per hit. */
    public static void writeRequest(OutputStream out, RescoreParams params, List<HitInput> hits, int sidecarTimeoutMs)
        throws IOException {
        try (JsonGenerator g = FACTORY.createGenerator(out)) {
            g.writeStartObject();
            if (params.model() != null) {
                g.writeStringField("model", params.model());
            }
            SidecarQuery q = params.query();
            if (!q.isEmpty()) {
                g.writeObjectFieldStart("query");
                writeOptional(g, "text", q.text());
                writeOptional(g, "user_id", q.userId());
                writeOptional(g, "session_id", q.sessionId());
                if (!q.features().isEmpty()) {
                    g.writeObjectFieldStart("features");
                    for (Map.Entry<String, Double> e : q.features().entrySet()) {
                        g.writeNumberField(e.getKey(), e.getValue());
                    }
                    g.writeEndObject();
                }
                writeStrings(g, "attributes", q.attributes());
                g.writeEndObject();
            }
            writeStrings(g, "context", params.context());
            writeOptional(g, "request_id", params.requestId());
            g.writeArrayFieldStart("hits");
            List<String> features = params.featureNames();
            for (HitInput hit : hits) {
                g.writeStartObject();
                g.writeStringField("id", hit.id());
                g.writeNumberField("score", hit.score());
                if (!features.isEmpty()) {
                    g.writeObjectFieldStart("features");
                    double[] values = hit.features();
                    for (int i = 0; i < features.size(); i++) {
                        if (Double.isFinite(values[i])) { // missing (NaN) is left out: the sidecar's "missing"
                            g.writeNumberField(features.get(i), values[i]);
                        }
                    }
                    g.writeEndObject();
                }
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeNumberField("timeout_ms", sidecarTimeoutMs);
            g.writeEndObject();
        }
    }

    private static void writeOptional(JsonGenerator g, String name, String value) throws IOException {
        if (value != null) {
            g.writeStringField(name, value);
        }
    }

    private static void writeStrings(JsonGenerator g, String name, Map<String, String> values) throws IOException {
        if (values.isEmpty()) {
            return;
        }
        g.writeObjectFieldStart(name);
        for (Map.Entry<String, String> e : values.entrySet()) {
            g.writeStringField(e.getKey(), e.getValue());
        }
        g.writeEndObject();
    }

    /** Parses and checks an answer; any deviation from the contract is a {@link SidecarException}. */
    public static SidecarResult parseResponse(byte[] body, int expectedHits) throws SidecarException {
        return parseResponse(new java.io.ByteArrayInputStream(body), expectedHits);
    }

    /** As {@link #parseResponse(byte[], int)}, reading the body from a stream (bounded by the caller). */
    public static SidecarResult parseResponse(InputStream body, int expectedHits) throws SidecarException {
        double[] scores = null;
        String model = null;
        String version = null;
        String variant = null;
        String fallback = null;
        long took = -1;
        try (JsonParser p = FACTORY.createParser(body)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw malformed("the body is not a JSON object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                switch (name) {
                    case "scores":
                        scores = readScores(p, t, expectedHits);
                        break;
                    case "model":
                        model = optionalString(p, t, name);
                        break;
                    case "version":
                        version = optionalString(p, t, name);
                        break;
                    case "variant":
                        variant = optionalString(p, t, name);
                        break;
                    case "fallback":
                        fallback = optionalString(p, t, name);
                        break;
                    case "took_us":
                        if (t == JsonToken.VALUE_NUMBER_INT) {
                            took = p.getLongValue();
                        }
                        break;
                    default:
                        p.skipChildren(); // compatible additions to the contract are ignored
                }
            }
            if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw malformed("trailing content after the JSON object");
            }
        } catch (IOException e) {
            throw new SidecarException(FallbackReason.MALFORMED_RESPONSE, "malformed response: " + e.getMessage(), e);
        }
        if (scores == null) {
            throw malformed("no \"scores\" array");
        }
        return new SidecarResult(scores, model, version, variant, fallback, took);
    }

    private static double[] readScores(JsonParser p, JsonToken t, int expectedHits) throws IOException, SidecarException {
        if (t != JsonToken.START_ARRAY) {
            throw malformed("\"scores\" is not an array");
        }
        double[] scores = new double[expectedHits];
        int n = 0;
        JsonToken v;
        while ((v = p.nextToken()) != JsonToken.END_ARRAY) {
            if (v != JsonToken.VALUE_NUMBER_INT && v != JsonToken.VALUE_NUMBER_FLOAT) {
                throw malformed("scores[" + n + "] is not a number");
            }
            double d = p.getDoubleValue();
            if (!Double.isFinite(d)) {
                throw malformed("scores[" + n + "] is not finite");
            }
            if (n < expectedHits) {
                scores[n] = d;
            }
            n++;
        }
        if (n != expectedHits) {
            throw new SidecarException(FallbackReason.WRONG_LENGTH,
                "wrong-length response: " + n + " scores for " + expectedHits + " hits");
        }
        return scores;
    }

    private static String optionalString(JsonParser p, JsonToken t, String name) throws IOException, SidecarException {
        if (t == JsonToken.VALUE_NULL) {
            return null;
        }
        if (t != JsonToken.VALUE_STRING) {
            throw malformed("\"" + name + "\" is not a string");
        }
        return p.getText();
    }

    private static SidecarException malformed(String what) {
        return new SidecarException(FallbackReason.MALFORMED_RESPONSE, "malformed response: " + what);
    }
}
