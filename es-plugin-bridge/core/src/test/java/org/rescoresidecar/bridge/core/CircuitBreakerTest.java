package org.rescoresidecar.bridge.core;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CircuitBreakerTest {
    @Test
    void opensAfterConsecutiveFailuresThenProbesOnceAfterTheCoolDown() {
        AtomicLong now = new AtomicLong(1_000_000_000L);
        CircuitBreaker b = new CircuitBreaker(3, 100, now::get);
        for (int i = 0; i < 2; i++) {
            assertTrue(b.tryAcquire());
            b.onFailure();
        }
        assertFalse(b.isOpen());
        b.onSuccess(); // a success in between resets the count
        for (int i = 0; i < 3; i++) {
            assertTrue(b.tryAcquire());
            b.onFailure();
        }
        assertTrue(b.isOpen());
        assertFalse(b.tryAcquire(), "open: calls are skipped");
        now.addAndGet(99_000_000L);
        assertFalse(b.tryAcquire(), "still cooling down");
        now.addAndGet(2_000_000L);
        assertTrue(b.tryAcquire(), "half-open: one probe");
        assertFalse(b.tryAcquire(), "only one probe at a time");
        b.onFailure();
        assertFalse(b.tryAcquire(), "a failed probe re-opens for another cool-down");
        now.addAndGet(101_000_000L);
        assertTrue(b.tryAcquire());
        b.onSuccess();
        assertFalse(b.isOpen());
        assertTrue(b.tryAcquire());
        assertTrue(b.tryAcquire());
    }
}
