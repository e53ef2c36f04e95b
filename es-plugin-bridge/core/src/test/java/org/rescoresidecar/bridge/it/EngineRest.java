package org.rescoresidecar.bridge.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/** A small JSON-over-HTTP client for the node's REST API (the way any search client talks to it). */
public final class EngineRest {
    public static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();

    private final String base;

    public EngineRest(String base) {
        this.base = base;
    }

    public static final class Response {
        public final int status;
        public final JsonNode body;
        public final String raw;
        public final long elapsedMillis;

        Response(int status, String raw, long elapsedMillis) throws IOException {
            this.status = status;
            this.raw = raw;
            this.body = raw.isEmpty() ? JSON.nullNode() : JSON.readTree(raw);
            this.elapsedMillis = elapsedMillis;
        }
    }

    public Response call(String method, String path, Object body) throws IOException, InterruptedException {
        return call(method, path, body, java.util.Map.of());
    }

    public Response call(String method, String path, Object body, java.util.Map<String, String> headers)
        throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(120));
        headers.forEach(b::header);
        if (body == null) {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        } else {
            String text = body instanceof String ? (String) body : JSON.writeValueAsString(body);
            b.header("content-type", path.contains("_bulk") ? "application/x-ndjson" : "application/json");
            b.method(method, HttpRequest.BodyPublishers.ofString(text, StandardCharsets.UTF_8));
        }
        long start = System.nanoTime();
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        return new Response(r.statusCode(), r.body(), (System.nanoTime() - start) / 1_000_000);
    }

    public JsonNode ok(String method, String path, Object body) throws IOException, InterruptedException {
        Response r = call(method, path, body);
        if (r.status / 100 != 2) {
            throw new AssertionError(method + " " + path + " -> HTTP " + r.status + ": " + r.raw);
        }
        return r.body;
    }

    public static void waitForHttp200(String url, long timeoutMillis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        Exception last = null;
        while (System.currentTimeMillis() < deadline) {
            try {
                HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build(),
                    HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                    return;
                }
            } catch (IOException e) {
                last = e;
            }
            Thread.sleep(200);
        }
        throw new IllegalStateException(url + " did not answer 200 within " + timeoutMillis + " ms (last error: " + last + ")");
    }

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        }
    }
}
