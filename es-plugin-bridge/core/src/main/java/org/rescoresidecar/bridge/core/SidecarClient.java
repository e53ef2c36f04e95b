package org.rescoresidecar.bridge.core;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.AccessController;
import java.security.PrivilegedActionException;
import java.security.PrivilegedExceptionAction;
import java.util.Locale;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * HTTP/1.1 to the local sidecar on the calling (search) thread, over pooled keep-alive sockets:
 * no executor, no selector thread, no hand-off (ADR 0007 has the measurements that chose this
 * over the JDK's HttpClient). The request is written into the connection's buffer and sent with one
 * flush ({@code TCP_NODELAY}); every read waits at most the time left in the budget, so a hung or
 * dripping sidecar never holds a search thread past the request's timeout. The answer must carry a
 * {@code Content-Length} (the sidecar always sends one).
 *
 * <p>A pooled connection that the sidecar closed while it sat idle fails before any byte of the
 * answer arrives; such a call is retried once on a fresh connection within the same budget and is
 * not a fault ({@code stale_retries} in the stats).
 */
public final class SidecarClient implements Closeable {
    /** Idle connections kept; more concurrent calls open more sockets, which are closed after use. */
    static final int MAX_IDLE = 64;
    static final int MAX_HEADER_BYTES = 16 * 1024;

    private final SidecarSettings settings;
    private final InetSocketAddress address;
    private final byte[] requestHead;
    private final ConcurrentLinkedDeque<Connection> idle = new ConcurrentLinkedDeque<>();
    private final AtomicInteger idleCount = new AtomicInteger();
    private final LongAdder staleRetries = new LongAdder();
    private final LongAdder connectionsOpened = new LongAdder();
    private volatile boolean closed;

    public SidecarClient(SidecarSettings settings) {
        this.settings = settings;
        this.address = new InetSocketAddress(settings.rescoreUri().getHost().replace("[", "").replace("]", ""),
            settings.rescoreUri().getPort());
        this.requestHead = ("POST " + settings.rescoreUri().getRawPath() + " HTTP/1.1\r\nHost: " + settings.rescoreUri().getHost()
            + ":" + settings.rescoreUri().getPort() + "\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
            + "Content-Length: ").getBytes(StandardCharsets.US_ASCII);
    }

    /** Writes a request body into the stream it is given. */
    @FunctionalInterface
    public interface BodyWriter {
        void write(OutputStream out) throws IOException;
    }

    /** Reads a 200 answer's body in place, before the connection goes back to the pool. */
    @FunctionalInterface
    public interface AnswerReader<T> {
        T read(byte[] body, int length) throws SidecarException;
    }

    /** POSTs the body {@code writer} produces; {@code reader} gets the body of an HTTP 200 answer. */
    public <T> T post(BodyWriter writer, int timeoutMs, long maxResponseBytes, AnswerReader<T> reader) throws SidecarException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        Connection conn = idle.pollFirst();
        if (conn != null) {
            idleCount.decrementAndGet();
        }
        boolean retried = false;
        while (true) {
            boolean reused = conn != null;
            RawAnswer answer;
            try {
                if (conn == null) {
                    conn = open(deadline);
                }
                answer = conn.exchange(writer, requestHead, deadline, maxResponseBytes);
            } catch (IOException | RuntimeException e) {
                boolean beforeAnswer = conn != null && !conn.answerStarted;
                if (conn != null) {
                    conn.close();
                    conn = null;
                }
                if (e instanceof SocketTimeoutException || System.nanoTime() - deadline >= 0) {
                    throw new SidecarException(FallbackReason.TIMEOUT, "no answer within " + timeoutMs + " ms", e);
                }
                if (reused && beforeAnswer && !retried && e instanceof IOException && !(e instanceof MalformedAnswer)) {
                    retried = true; // the sidecar closed this idle connection: once more on a fresh one
                    staleRetries.increment();
                    continue;
                }
                throw classify(e);
            }
            try {
                if (answer.status != 200) {
                    String snippet = new String(answer.body, 0, Math.min(answer.length, 300), StandardCharsets.UTF_8);
                    FallbackReason reason = answer.status >= 400 && answer.status < 500 ? FallbackReason.REQUEST_ERROR
                        : FallbackReason.HTTP_ERROR;
                    throw new SidecarException(reason, "sidecar answered HTTP " + answer.status + ": " + snippet);
                }
                return reader.read(answer.body, answer.length);
            } finally {
                release(conn);
            }
        }
    }

    private void release(Connection conn) {
        if (conn.keepAlive && !closed && idleCount.incrementAndGet() <= MAX_IDLE) {
            idle.offerFirst(conn);
            return;
        }
        if (conn.keepAlive && !closed) {
            idleCount.decrementAndGet();
        }
        conn.close();
    }

    private Connection open(long deadline) throws IOException {
        long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        if (left < 1) {
            throw new SocketTimeoutException("no time left to connect");
        }
        int connectMs = (int) Math.min(left, settings.connectTimeoutMs());
        connectionsOpened.increment();
        return privileged(() -> new Connection(address, connectMs));
    }

    private static SidecarException classify(Exception e) {
        if (e instanceof MalformedAnswer) {
            return new SidecarException(FallbackReason.MALFORMED_RESPONSE, "malformed response: " + e.getMessage(), e);
        }
        if (e instanceof ConnectException) {
            return new SidecarException(FallbackReason.UNAVAILABLE, "cannot connect to the sidecar: " + e, e);
        }
        if (e instanceof IOException) {
            return new SidecarException(FallbackReason.UNAVAILABLE, "sidecar connection failed: " + e, e);
        }
        if (e instanceof SecurityException) {
            return new SidecarException(FallbackReason.ERROR, "not permitted to reach the sidecar: " + e, e);
        }
        return new SidecarException(FallbackReason.ERROR, "sidecar call failed: " + e, e);
    }

    public long staleRetries() {
        return staleRetries.sum();
    }

    public long connectionsOpened() {
        return connectionsOpened.sum();
    }

    /** Best effort: opens one connection off the search path so the first search does not pay for it. */
    public void warmUp() {
        try {
            Connection c = open(System.nanoTime() + TimeUnit.SECONDS.toNanos(1));
            idleCount.incrementAndGet();
            idle.offerFirst(c);
        } catch (IOException | RuntimeException ignored) {
            // the sidecar may start after the node: the first call connects
        }
    }

    @SuppressWarnings("removal") // the Security Manager (OpenSearch 2.x) needs it; a no-op on JDK 24+
    private static <T> T privileged(PrivilegedExceptionAction<T> action) throws IOException {
        try {
            return AccessController.doPrivileged(action);
        } catch (PrivilegedActionException e) {
            if (e.getException() instanceof IOException io) {
                throw io;
            }
            throw new IOException(e.getException());
        }
    }

    @Override
    public void close() {
        closed = true;
        Connection c;
        while ((c = idle.pollFirst()) != null) {
            c.close();
        }
    }

    static final class MalformedAnswer extends IOException {
        private static final long serialVersionUID = 1L;

        MalformedAnswer(String what) {
            super(what);
        }
    }

    /** A growable byte buffer whose array is read in place. */
    static final class Buffer extends ByteArrayOutputStream {
        Buffer(int size) {
            super(size);
        }

        byte[] array() {
            return buf;
        }

        @Override
        public void close() {
            // JSON generators close their target: the buffer stays usable
        }
    }

    private static final class RawAnswer {
        final int status;
        final byte[] body;
        final int length;

        RawAnswer(int status, byte[] body, int length) {
            this.status = status;
            this.body = body;
            this.length = length;
        }
    }

    private static final class Connection {
        private static final byte[] CRLF_CRLF = {'\r', '\n', '\r', '\n'};

        private final Socket socket;
        private final InputStream in;
        private final OutputStream out;
        private final Buffer request = new Buffer(8192);
        /** Bytes read from the socket and not consumed yet: {@code [readPos, readLimit)}. */
        private final byte[] readBuf = new byte[16 * 1024];
        private int readPos;
        private int readLimit;
        private byte[] response = new byte[8192];
        boolean keepAlive = true;
        boolean answerStarted;

        Connection(InetSocketAddress address, int connectMs) throws IOException {
            socket = new Socket();
            try {
                socket.setTcpNoDelay(true);
                socket.connect(address, connectMs);
                in = socket.getInputStream();
                out = new BufferedOutputStream(socket.getOutputStream(), 64 * 1024);
            } catch (IOException | RuntimeException e) {
                socket.close();
                throw e;
            }
        }

        RawAnswer exchange(BodyWriter writer, byte[] head, long deadline, long maxBytes) throws IOException {
            answerStarted = false;
            request.reset();
            writer.write(request);
            out.write(head);
            out.write(Integer.toString(request.size()).getBytes(StandardCharsets.US_ASCII));
            out.write(CRLF_CRLF);
            out.write(request.array(), 0, request.size());
            out.flush();
            return readAnswer(deadline, maxBytes);
        }

        /** One socket read, waiting at most the time left in the budget. */
        private int readSome(byte[] into, int off, int len, long deadline) throws IOException {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left < 1) {
                throw new SocketTimeoutException("budget spent");
            }
            socket.setSoTimeout((int) Math.min(left, Integer.MAX_VALUE));
            int n = in.read(into, off, len);
            if (n > 0) {
                answerStarted = true;
            }
            return n;
        }

        private int readByte(long deadline) throws IOException {
            if (readPos == readLimit) {
                int n = readSome(readBuf, 0, readBuf.length, deadline);
                if (n < 0) {
                    throw answerStarted ? new MalformedAnswer("the answer ended early") : new EOFException("the sidecar closed the connection");
                }
                readPos = 0;
                readLimit = n;
            }
            return readBuf[readPos++] & 0xff;
        }

        private String line(long deadline, int[] budget) throws IOException {
            StringBuilder sb = new StringBuilder(64);
            while (true) {
                int b = readByte(deadline);
                if (--budget[0] < 0) {
                    throw new MalformedAnswer("response headers larger than " + MAX_HEADER_BYTES + " bytes");
                }
                if (b == '\n') {
                    int n = sb.length();
                    return n > 0 && sb.charAt(n - 1) == '\r' ? sb.substring(0, n - 1) : sb.toString();
                }
                sb.append((char) b);
            }
        }

        private RawAnswer readAnswer(long deadline, long maxBytes) throws IOException {
            int[] budget = {MAX_HEADER_BYTES};
            String status = line(deadline, budget);
            if (!status.startsWith("HTTP/1.") || status.length() < 12) {
                throw new MalformedAnswer("not an HTTP/1.x status line: " + status);
            }
            int code;
            try {
                code = Integer.parseInt(status.substring(9, 12));
            } catch (NumberFormatException e) {
                throw new MalformedAnswer("bad status line: " + status);
            }
            long length = -1;
            if (status.startsWith("HTTP/1.0")) {
                keepAlive = false;
            }
            String h;
            while (!(h = line(deadline, budget)).isEmpty()) {
                int colon = h.indexOf(':');
                if (colon < 0) {
                    throw new MalformedAnswer("bad header line: " + h);
                }
                String name = h.substring(0, colon).trim().toLowerCase(Locale.ROOT);
                String value = h.substring(colon + 1).trim();
                if (name.equals("content-length")) {
                    try {
                        length = Long.parseLong(value);
                    } catch (NumberFormatException e) {
                        throw new MalformedAnswer("bad content-length: " + value);
                    }
                } else if (name.equals("connection") && value.toLowerCase(Locale.ROOT).contains("close")) {
                    keepAlive = false;
                } else if (name.equals("transfer-encoding")) {
                    throw new MalformedAnswer("transfer-encoding " + value + " (the sidecar sends content-length)");
                }
            }
            if (length < 0) {
                throw new MalformedAnswer("no content-length");
            }
            if (length > maxBytes) {
                throw new MalformedAnswer("response body larger than " + maxBytes + " bytes");
            }
            if (response.length < length) {
                response = new byte[(int) Math.max(length, response.length * 2L)];
            }
            int got = Math.min(readLimit - readPos, (int) length);
            System.arraycopy(readBuf, readPos, response, 0, got);
            readPos += got;
            while (got < length) {
                int n = readSome(response, got, (int) length - got, deadline);
                if (n < 0) {
                    throw new MalformedAnswer("body ended after " + got + " of " + length + " bytes");
                }
                got += n;
            }
            if (readPos != readLimit) {
                keepAlive = false; // more bytes than announced: do not reuse this connection
                readPos = readLimit = 0;
            }
            return new RawAnswer(code, response, got);
        }

        void close() {
            try {
                socket.close();
            } catch (IOException ignored) {
                // nothing to do
            }
        }
    }
}
