package org.rescoresidecar.bridge.core;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CircuitBreakerTest {
    static final long MS = 1_000_000L;
    final AtomicLong now = new AtomicLong(1_000_000 * MS);

    /** window 1 s, at least 4 calls, 50% failures, cool-down 100 ms, 2 probes, ramp 1 s, no streak rule. */
    CircuitBreaker breaker() {
        return new CircuitBreaker(1000, 4, 0.5, 100, 2, 1000, 0, now::get);
    }

    static void call(CircuitBreaker b, boolean ok) {
        CircuitBreaker.Permit p = b.tryAcquire();
        assertNotNull(p, "the call should be let through");
        try {
            if (ok) {
                p.success();
            } else {
                p.failure();
            }
        } finally {
            p.release();
        }
    }

    CircuitBreaker opened() {
        CircuitBreaker b = breaker();
        for (int i = 0; i < 4; i++) {
            call(b, false);
        }
        assertEquals(CircuitBreaker.State.OPEN, b.state());
        return b;
    }

    @Test
    void opensOnARunOfFailuresEvenWhenTheWindowIsMostlyHealthy() {
        // window 10 s, at least 10 calls, 50% failures, 5 failures in a row
        CircuitBreaker b = new CircuitBreaker(10_000, 10, 0.5, 100, 2, 1000, 5, now::get);
        for (int i = 0; i < 1000; i++) {
            call(b, true);
        }
        for (int i = 0; i < 4; i++) {
            call(b, false);
        }
        call(b, true); // a success ends the run
        for (int i = 0; i < 4; i++) {
            call(b, false);
        }
        assertEquals(CircuitBreaker.State.CLOSED, b.state(), "8 failures of 1,009, never 5 in a row");
        call(b, false);
        assertEquals(CircuitBreaker.State.OPEN, b.state(), "the fifth failure in a row opens it");
        assertEquals(1, b.timesOpened());
        now.addAndGet(100 * MS);
        call(b, true);
        call(b, true);
        assertEquals(CircuitBreaker.State.RAMP_UP, b.state(), "the run does not outlive the opening");
        assertThrows(IllegalArgumentException.class, () -> new CircuitBreaker(10_000, 10, 0.5, 100, 2, 1000, -1, now::get));
    }

    @Test
    void opensOnTheFailureRateOverTheWindowNotOnAStreak() {
        CircuitBreaker b = breaker();
        call(b, false);
        call(b, false);
        call(b, false);
        assertEquals(CircuitBreaker.State.CLOSED, b.state(), "3 calls: below the minimum");
        for (int i = 0; i < 4; i++) {
            call(b, true);
        }
        call(b, false); // 4 failures of 8: 50%
        assertEquals(CircuitBreaker.State.OPEN, b.state());
        assertEquals(1, b.timesOpened());
    }

    @Test
    void oldOutcomesLeaveTheWindow() {
        CircuitBreaker b = breaker();
        call(b, false);
        call(b, false);
        call(b, false);
        now.addAndGet(1500 * MS); // the failures are older than the window
        call(b, true);
        call(b, true);
        call(b, true);
        call(b, false);
        assertEquals(CircuitBreaker.State.CLOSED, b.state(), "1 failure of 4 in the window");
    }

    @Test
    void callsWithoutAnOutcomeNeverOpenIt() {
        CircuitBreaker b = breaker();
        for (int i = 0; i < 100; i++) {
            b.tryAcquire().release(); // e.g. the sidecar's 4xx: the search's own error
        }
        assertEquals(CircuitBreaker.State.CLOSED, b.state());
    }

    @Test
    void halfOpenLetsOneProbeAtATimeAndNeedsProbeSuccessesToRamp() {
        CircuitBreaker b = opened();
        assertNull(b.tryAcquire(), "open: calls are skipped");
        assertFalse(b.allowsCalls());
        now.addAndGet(101 * MS);
        assertTrue(b.allowsCalls());
        CircuitBreaker.Permit probe = b.tryAcquire();
        assertNotNull(probe);
        assertTrue(probe.isProbe());
        assertNull(b.tryAcquire(), "only one probe at a time");
        probe.success();
        probe.release();
        assertEquals(CircuitBreaker.State.HALF_OPEN, b.state(), "one success of two");
        call(b, true);
        assertEquals(CircuitBreaker.State.RAMP_UP, b.state());
        int let = 0;
        for (int i = 0; i < 1000; i++) {
            CircuitBreaker.Permit p = b.tryAcquire();
            if (p != null) {
                let++;
                p.release();
            }
        }
        assertTrue(let > 30 && let < 300, "about 10% at the start of the ramp: " + let);
        now.addAndGet(1001 * MS);
        assertNotNull(b.tryAcquire());
        assertEquals(CircuitBreaker.State.CLOSED, b.state(), "the end of the ramp closes it");
    }

    @Test
    void aFailedProbeOrARampFailureReopens() {
        CircuitBreaker b = opened();
        now.addAndGet(101 * MS);
        call(b, false);
        assertEquals(CircuitBreaker.State.OPEN, b.state());
        assertNull(b.tryAcquire(), "another cool-down");
        now.addAndGet(101 * MS);
        call(b, true);
        call(b, true);
        assertEquals(CircuitBreaker.State.RAMP_UP, b.state());
        now.addAndGet(999 * MS); // the end of the ramp: every call let through
        CircuitBreaker.Permit p = b.tryAcquire();
        p.failure();
        p.release();
        assertEquals(CircuitBreaker.State.OPEN, b.state());
    }

    @Test
    void aProbeWhoseCallerDiesIsReleasedInFinally() {
        CircuitBreaker b = opened();
        now.addAndGet(101 * MS);
        assertThrows(OutOfMemoryError.class, () -> {
            CircuitBreaker.Permit p = b.tryAcquire();
            try {
                throw new OutOfMemoryError("simulated");
            } finally {
                p.release();
            }
        });
        assertNotNull(b.tryAcquire(), "the probe slot is free again: the breaker cannot stick half-open");
    }

    @Test
    void anotherCallFailingDoesNotFreeTheProbeSlot() {
        CircuitBreaker b = breaker();
        CircuitBreaker.Permit early = b.tryAcquire(); // in flight while the breaker opens
        for (int i = 0; i < 4; i++) {
            call(b, false);
        }
        now.addAndGet(101 * MS);
        CircuitBreaker.Permit probe = b.tryAcquire();
        assertTrue(probe.isProbe());
        early.failure(); // a call from the closed state ends late
        early.release();
        assertNull(b.tryAcquire(), "still one probe at a time");
        assertEquals(CircuitBreaker.State.HALF_OPEN, b.state());
        probe.release();
    }
}
