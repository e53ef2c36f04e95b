package org.rescoresidecar.bridge.core;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Microsecond durations in fixed log-spaced buckets (25% wide, 1 µs to ~40 s), lock-free; quantiles
 * are read as the upper edge of the bucket that holds them (at most 25% high).
 */
public final class LatencyHistogram {
    static final double GROWTH = 1.25;
    static final int BUCKETS = 80;
    private static final double LOG_GROWTH = Math.log(GROWTH);

    private final AtomicLongArray counts = new AtomicLongArray(BUCKETS);

    static int bucket(long micros) {
        if (micros <= 1) {
            return 0;
        }
        return (int) Math.min(BUCKETS - 1, Math.ceil(Math.log(micros) / LOG_GROWTH));
    }

    static long upperEdge(int bucket) {
        return (long) Math.ceil(Math.pow(GROWTH, bucket));
    }

    public void record(long micros) {
        counts.incrementAndGet(bucket(Math.max(0, micros)));
    }

    public long count() {
        long n = 0;
        for (int i = 0; i < BUCKETS; i++) {
            n += counts.get(i);
        }
        return n;
    }

    /** The q-quantile's bucket upper edge in µs, or -1 when empty. */
    public long quantile(double q) {
        long n = count();
        if (n == 0) {
            return -1;
        }
        long rank = (long) Math.ceil(q * n);
        long seen = 0;
        for (int i = 0; i < BUCKETS; i++) {
            seen += counts.get(i);
            if (seen >= Math.max(1, rank)) {
                return upperEdge(i);
            }
        }
        return upperEdge(BUCKETS - 1);
    }

    /**
     * {@code {count, p50, p90, p99, buckets}} for the stats endpoint; {@code buckets} maps each
     * non-empty bucket's upper edge (µs, as a string) to its count, so that a client can subtract
     * two snapshots and read the quantiles of an interval.
     */
    public Map<String, Object> snapshot() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("count", count());
        out.put("p50", quantile(0.50));
        out.put("p90", quantile(0.90));
        out.put("p99", quantile(0.99));
        Map<String, Long> buckets = new LinkedHashMap<>();
        for (int i = 0; i < BUCKETS; i++) {
            long c = counts.get(i);
            if (c > 0) {
                buckets.put(Long.toString(upperEdge(i)), c);
            }
        }
        out.put("buckets", buckets);
        return out;
    }
}
