package org.rescoresidecar.bridge.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LatencyHistogramTest {
    @Test
    void quantilesAreTheUpperEdgeOfTheirBucketAtMost25PercentHigh() {
        LatencyHistogram h = new LatencyHistogram();
        assertEquals(-1, h.quantile(0.5), "empty");
        for (long us = 1; us <= 1000; us++) {
            h.record(us);
        }
        assertEquals(1000, h.count());
        long p50 = h.quantile(0.5);
        long p99 = h.quantile(0.99);
        assertTrue(p50 >= 500 && p50 <= 625, "p50 " + p50);
        assertTrue(p99 >= 990 && p99 <= 1238, "p99 " + p99);
        h.record(-5); // a negative overhead (clock skew between the two timers) lands in the first bucket
        h.record(Long.MAX_VALUE); // and a huge one in the last
        assertEquals(1002, h.count());
    }
}
