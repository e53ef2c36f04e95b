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
        return new SidecarService(new SidecarSettings("http://127.0.0.1:" + server.getAddress().getPort(), 1000, 200, failures, 60_000));
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.stop(0);
        }
    }

    static final RescoreParams PARAMS = new RescoreParams("m", "item_id", List.of("price"), "q", "u", null, null, null, null);
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
        try (SidecarService s = new SidecarService(new SidecarSettings("http://127.0.0.1:" + port, 200, 50, 2, 60_000))) {
            assertFallback(s, FallbackReason.UNAVAILABLE);
            assertFallback(s, FallbackReason.UNAVAILABLE);
            assertFallback(s, FallbackReason.BREAKER_OPEN); // two failures opened it: no call at all now
            assertTrue((Boolean) s.stats().get("breaker_open"));
            assertTrue(s.stats().get("last_failure").toString().startsWith("sidecar_unavailable"));
        }
    }

    @Test
    void sidecarFallbackDoesNotOpenTheBreaker() throws Exception {
        try (SidecarService s = start(1)) {
            body.set("{\"scores\":[1,2],\"fallback\":\"timeout\"}");
            assertFallback(s, FallbackReason.SIDECAR_FALLBACK);
            assertFallback(s, FallbackReason.SIDECAR_FALLBACK);
            assertEquals(2, requests.get());
        }
    }
}
