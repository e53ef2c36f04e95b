package org.rescoresidecar.bridge.core;

import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The client and service against a local HTTP server that misbehaves in each way the contract allows for. */
class SidecarServiceTest {
    private HttpServer server;
    private final AtomicReference<String> body = new AtomicReference<>();
    private final AtomicInteger status = new AtomicInteger(200);
    private final AtomicInteger delayMs = new AtomicInteger();
    private final AtomicInteger requests = new AtomicInteger();
    private final java.util.concurrent.atomic.AtomicBoolean chunked = new java.util.concurrent.atomic.AtomicBoolean();
    private final AtomicReference<String> lastRequest = new AtomicReference<>();

    private SidecarService start(int failures) throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
        server.setExecutor(Executors.newCachedThreadPool());
        server.createContext("/v1/rescore", ex -> {
            requests.incrementAndGet();
            lastRequest.set(new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8));
            try {
                Thread.sleep(delayMs.get());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            byte[] out = body.get().getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(status.get(), chunked.get() ? 0 : out.length); // 0: chunked, no length announced
            try (OutputStream os = ex.getResponseBody()) {
                os.write(out);
            } catch (IOException clientGone) {
                // the bridge gave up (timeout): expected in the slow case
            }
        });
        server.start();
        return new SidecarService(SidecarSettings.withUrl("http://127.0.0.1:" + server.getAddress().getPort()).withTimeouts(1000, 200)
            .withBreaker(10_000, failures, 0.5, 60_000, 1, 0));
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.stop(0);
        }
    }

    static final RescoreParams PARAMS = RescoreParamsTest.parse("{\"model\": \"m\", \"id_field\": \"item_id\", \"fields\": [\"price\"],"
        + " \"query_text\": \"q\", \"user_id\": \"u\"}");
    static final List<HitInput> HITS = List.of(new HitInput("a", 1f, new double[] {10}), new HitInput("b", 2f, new double[] {20}));

    @Test
    void rescoresAndReusesTheConnection() throws Exception {
        try (SidecarService s = start(5)) {
            body.set("{\"scores\":[0.9,0.1],\"model\":\"m\",\"version\":\"2\",\"variant\":\"live\",\"fallback\":null,\"took_us\":5}");
            for (int i = 0; i < 3; i++) {
                SidecarService.Outcome o = s.rescore(PARAMS, HITS);
                assertTrue(o.isRescored(), o.detail());
                assertArrayEquals(new double[] {0.9, 0.1}, o.modelScores());
                assertEquals("2", o.result().version());
            }
            assertTrue(lastRequest.get().contains("\"timeout_ms\":800"), "the sidecar gets 80% of the budget: " + lastRequest.get());
            assertEquals(3, s.counters().rescored());
            assertEquals(1L, s.stats().get("connections_opened"), "one keep-alive connection for all calls");
            assertEquals(0, s.counters().fallbacksTotal());
        }
    }

    private void assertFallback(SidecarService s, FallbackReason reason) {
        long before = s.counters().fallbacks(reason);
        long start = System.nanoTime();
        SidecarService.Outcome o = s.rescore(PARAMS, HITS);
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertFalse(o.isRescored());
        assertEquals(reason, o.reason(), o.detail());
        assertEquals(before + 1, s.counters().fallbacks(reason));
        assertTrue(ms < 1000 + 1000, "fallback took " + ms + " ms");
    }

    @Test
    void everyFailureKeepsTheBaselineAndIsCounted() throws Exception {
        try (SidecarService s = start(100)) {
            status.set(500);
            body.set("{\"error\":{\"code\":\"internal\",\"message\":\"boom\"}}");
            assertFallback(s, FallbackReason.HTTP_ERROR);
            status.set(200);
            body.set("not json");
            assertFallback(s, FallbackReason.MALFORMED_RESPONSE);
            body.set("{\"scores\":[1]}");
            assertFallback(s, FallbackReason.WRONG_LENGTH);
            body.set("{\"scores\":[1,2],\"fallback\":\"model_unavailable\",\"model\":\"m\",\"version\":null}");
            assertFallback(s, FallbackReason.SIDECAR_FALLBACK);
            body.set("{\"scores\":[1,2],\"pad\":\"" + "x".repeat(200_000) + "\"}");
            assertFallback(s, FallbackReason.MALFORMED_RESPONSE); // announced over the response size bound
            chunked.set(true);
            assertFallback(s, FallbackReason.MALFORMED_RESPONSE); // streamed over the bound
            chunked.set(false);
            body.set("{\"scores\":[1,2]}");
            delayMs.set(3000);
            assertFallback(s, FallbackReason.TIMEOUT);
        }
    }

    @Test
    void downSidecarIsUnavailable() throws Exception {
        int port;
        try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = free.getLocalPort();
        }
        try (SidecarService s = new SidecarService(SidecarSettings.withUrl("http://127.0.0.1:" + port).withTimeouts(200, 50)
            .withBreaker(10_000, 2, 0.5, 60_000, 1, 0))) {
            assertFallback(s, FallbackReason.UNAVAILABLE);
            assertFallback(s, FallbackReason.UNAVAILABLE);
            assertFallback(s, FallbackReason.BREAKER_OPEN); // two failures opened it: no call at all now
            assertTrue((Boolean) s.stats().get("breaker_open"));
            assertTrue(s.stats().get("last_failure").toString().startsWith("sidecar_unavailable"));
        }
    }

    @Test
    void onlyLoadSheddingFallbacksCountAgainstTheSidecar() throws Exception {
        try (SidecarService s = start(2)) {
            body.set("{\"scores\":[1,2],\"fallback\":\"model_unavailable\"}");
            for (int i = 0; i < 5; i++) {
                assertFallback(s, FallbackReason.SIDECAR_FALLBACK);
            }
            assertFalse(s.breaker().isOpen(), "it answered in time: healthy");
            body.set("{\"scores\":[1,2],\"fallback\":\"overloaded\"}");
            for (int i = 0; i < 5; i++) {
                assertFallback(s, FallbackReason.SIDECAR_FALLBACK); // 5 failures of 10 calls: 50%
            }
            assertTrue(s.breaker().isOpen(), "load shedding opens it: " + s.stats());
            assertEquals(java.util.Map.of("model_unavailable", 5L, "overloaded", 5L), s.stats().get("sidecar_fallbacks"));
        }
    }

    @Test
    void aRequestErrorNeverTouchesTheBreaker() throws Exception {
        try (SidecarService s = start(2)) {
            status.set(404);
            body.set("{\"error\":{\"code\":\"unknown_model\",\"message\":\"no model named nope\"}}");
            for (int i = 0; i < 20; i++) {
                assertFallback(s, FallbackReason.REQUEST_ERROR);
            }
            assertFalse(s.breaker().isOpen());
            assertTrue(s.stats().get("last_failure").toString().contains("no model named nope"), s.stats().toString());
            status.set(200);
            body.set("{\"scores\":[0.9,0.1]}");
            assertTrue(s.rescore(PARAMS, HITS).isRescored(), "the next valid call is rescored");
        }
    }

    @Test
    void aConnectionTheSidecarClosedWhileIdleIsRetriedOnceAndIsNoFault() throws Exception {
        // answers one request per connection, then closes it without saying so (like a restarted sidecar)
        try (ServerSocket listener = new ServerSocket(0, 16, InetAddress.getLoopbackAddress())) {
            Thread t = new Thread(() -> {
                while (!listener.isClosed()) {
                    try (java.net.Socket c = listener.accept()) {
                        java.io.InputStream in = c.getInputStream();
                        StringBuilder head = new StringBuilder();
                        while (!head.toString().endsWith("\r\n\r\n")) {
                            head.append((char) in.read());
                        }
                        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?i)content-length: *(\\d+)").matcher(head);
                        m.find();
                        in.readNBytes(Integer.parseInt(m.group(1)));
                        byte[] out = "{\"scores\":[0.5,0.25]}".getBytes(StandardCharsets.UTF_8);
                        c.getOutputStream().write(("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: " + out.length
                            + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                        c.getOutputStream().write(out);
                        c.getOutputStream().flush();
                        Thread.sleep(20);
                    } catch (IOException | InterruptedException e) {
                        return;
                    }
                }
            });
            t.setDaemon(true);
            t.start();
            try (SidecarService s = new SidecarService(SidecarSettings.withUrl("http://127.0.0.1:" + listener.getLocalPort())
                .withTimeouts(2000, 200).withBreaker(10_000, 1, 0.01, 60_000, 1, 0))) {
                for (int i = 0; i < 5; i++) {
                    SidecarService.Outcome o = s.rescore(PARAMS, HITS);
                    assertTrue(o.isRescored(), "call " + i + ": " + o.detail());
                    Thread.sleep(50); // the server has closed the pooled connection by now
                }
                assertTrue((Long) s.stats().get("stale_retries") >= 3, s.stats().toString());
                assertEquals(0, s.counters().fallbacksTotal());
                assertFalse(s.breaker().isOpen(), "a stale connection is not a fault");
            }
        }
    }
}
