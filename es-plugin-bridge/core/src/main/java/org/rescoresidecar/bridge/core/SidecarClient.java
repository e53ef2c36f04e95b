package org.rescoresidecar.bridge.core;

import java.io.Closeable;
import java.io.IOException;
import java.net.ConnectException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.AccessController;
import java.security.PrivilegedAction;
import java.time.Duration;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The JDK's HTTP/1.1 client with keep-alive connections to the local sidecar. The calling (search)
 * thread waits on the response future for at most the budget and cancels the exchange after it, so
 * a hung sidecar can never hold a search thread longer than the request's timeout.
 */
public final class SidecarClient implements Closeable {
    private final SidecarSettings settings;
    private final ExecutorService executor;
    private final HttpClient http;

    public SidecarClient(SidecarSettings settings) {
        this.settings = settings;
        // The client's selector thread and its executor's threads are created here, once, under the
        // plugin's own permissions (Security Manager: doPrivileged; ES entitlements: manage_threads).
        this.executor = privileged(() -> Executors.newFixedThreadPool(2, daemonThreads()));
        this.http = privileged(() -> HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofMillis(settings.connectTimeoutMs()))
            .followRedirects(HttpClient.Redirect.NEVER)
            .proxy(HttpClient.Builder.NO_PROXY)
            .executor(executor)
            .build());
    }

    /** POSTs {@code body} to {@code /v1/rescore} and returns the 200 body, or throws within ~timeoutMs. */
    public byte[] post(byte[] body, int timeoutMs) throws SidecarException {
        return post(body, timeoutMs, Long.MAX_VALUE);
    }

    /** As {@link #post(byte[], int)}, refusing (as malformed) a response body over {@code maxResponseBytes}. */
    public byte[] post(byte[] body, int timeoutMs, long maxResponseBytes) throws SidecarException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        HttpRequest request = HttpRequest.newBuilder(settings.rescoreUri())
            .timeout(Duration.ofMillis(timeoutMs))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .POST(HttpRequest.BodyPublishers.ofByteArray(body))
            .build();
        CompletableFuture<HttpResponse<byte[]>> future =
            privileged(() -> http.sendAsync(request, limitedBody(maxResponseBytes)));
        HttpResponse<byte[]> response;
        try {
            response = future.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            future.cancel(true);
            throw new SidecarException(FallbackReason.TIMEOUT, "no answer within " + timeoutMs + " ms");
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt();
            throw new SidecarException(FallbackReason.ERROR, "interrupted while waiting for the sidecar", e);
        } catch (CancellationException e) {
            throw new SidecarException(FallbackReason.ERROR, "sidecar call cancelled", e);
        } catch (ExecutionException e) {
            throw classify(e.getCause() == null ? e : e.getCause(), timeoutMs);
        }
        if (response.statusCode() != 200) {
            String snippet = new String(response.body(), 0, Math.min(response.body().length, 200), StandardCharsets.UTF_8);
            throw new SidecarException(FallbackReason.HTTP_ERROR, "sidecar answered HTTP " + response.statusCode() + ": " + snippet);
        }
        return response.body();
    }

    /** An asynchronous {@code GET /readyz}; its result is ignored. */
    void warmUp() {
        HttpRequest request = HttpRequest.newBuilder(settings.rescoreUri().resolve("/readyz"))
            .timeout(Duration.ofSeconds(2)).GET().build();
        try {
            privileged(() -> http.sendAsync(request, HttpResponse.BodyHandlers.discarding()));
        } catch (RuntimeException ignored) {
            // best effort only
        }
    }

    /** Collects the body, failing the exchange as soon as it exceeds {@code max} bytes. */
    static HttpResponse.BodyHandler<byte[]> limitedBody(long max) {
        return info -> new LimitedSubscriber(max);
    }

    private static final class ResponseTooLarge extends IOException {
        private static final long serialVersionUID = 1L;

        ResponseTooLarge(long max) {
            super("response body larger than " + max + " bytes");
        }
    }

    private static final class LimitedSubscriber implements HttpResponse.BodySubscriber<byte[]> {
        private final long max;
        private final java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        private final CompletableFuture<byte[]> result = new CompletableFuture<>();
        private java.util.concurrent.Flow.Subscription subscription;

        LimitedSubscriber(long max) {
            this.max = max;
        }

        @Override
        public CompletableFuture<byte[]> getBody() {
            return result;
        }

        @Override
        public void onSubscribe(java.util.concurrent.Flow.Subscription s) {
            subscription = s;
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(java.util.List<java.nio.ByteBuffer> buffers) {
            for (java.nio.ByteBuffer b : buffers) {
                if (out.size() + (long) b.remaining() > max) {
                    subscription.cancel();
                    result.completeExceptionally(new ResponseTooLarge(max));
                    return;
                }
                byte[] chunk = new byte[b.remaining()];
                b.get(chunk);
                out.write(chunk, 0, chunk.length);
            }
        }

        @Override
        public void onError(Throwable t) {
            result.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            result.complete(out.toByteArray());
        }
    }

    private static SidecarException classify(Throwable cause, int timeoutMs) {
        if (cause instanceof ResponseTooLarge) {
            return new SidecarException(FallbackReason.MALFORMED_RESPONSE, "malformed response: " + cause.getMessage(), cause);
        }
        if (cause instanceof HttpConnectTimeoutException || cause instanceof HttpTimeoutException) {
            return new SidecarException(FallbackReason.TIMEOUT, "no answer within " + timeoutMs + " ms", cause);
        }
        if (cause instanceof ConnectException) {
            return new SidecarException(FallbackReason.UNAVAILABLE, "cannot connect to the sidecar: " + cause, cause);
        }
        if (cause instanceof IOException) {
            return new SidecarException(FallbackReason.UNAVAILABLE, "sidecar connection failed: " + cause, cause);
        }
        if (cause instanceof SecurityException) {
            return new SidecarException(FallbackReason.ERROR, "not permitted to reach the sidecar: " + cause, cause);
        }
        return new SidecarException(FallbackReason.ERROR, "sidecar call failed: " + cause, cause);
    }

    @SuppressWarnings("removal") // the Security Manager (OpenSearch 2.x) needs it; a no-op on JDK 24+
    private static <T> T privileged(PrivilegedAction<T> action) {
        return AccessController.doPrivileged(action);
    }

    private static ThreadFactory daemonThreads() {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, "rescore-sidecar-http-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    @Override
    public void close() {
        executor.shutdownNow();
    }
}
