package org.rescoresidecar.bridge.core;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Skips sidecar calls for a cool-down after {@code failureThreshold} consecutive failures, so a dead
 * or hung sidecar costs searches nothing instead of one timeout per shard. After the cool-down one
 * probe call is let through (half-open); its success closes the breaker, its failure re-opens it.
 */
public final class CircuitBreaker {
    private final int failureThreshold;
    private final long coolDownNanos;
    private final LongSupplier nanoClock;
    private final AtomicInteger consecutiveFailures = new AtomicInteger();
    private final AtomicLong openUntilNanos = new AtomicLong();
    private final AtomicBoolean open = new AtomicBoolean();
    private final AtomicBoolean probeInFlight = new AtomicBoolean();

    public CircuitBreaker(int failureThreshold, long coolDownMillis, LongSupplier nanoClock) {
        if (failureThreshold < 1) {
            throw new IllegalArgumentException("breaker failure threshold must be >= 1, got " + failureThreshold);
        }
        if (coolDownMillis < 0) {
            throw new IllegalArgumentException("breaker cool-down must be >= 0 ms, got " + coolDownMillis);
        }
        this.failureThreshold = failureThreshold;
        this.coolDownNanos = coolDownMillis * 1_000_000L;
        this.nanoClock = nanoClock;
    }

    /** True when a call may be made now; a true answer in the half-open state claims the single probe. */
    public boolean tryAcquire() {
        if (!open.get()) {
            return true;
        }
        if (nanoClock.getAsLong() - openUntilNanos.get() < 0) {
            return false;
        }
        return probeInFlight.compareAndSet(false, true);
    }

    public void onSuccess() {
        consecutiveFailures.set(0);
        open.set(false);
        probeInFlight.set(false);
    }

    public void onFailure() {
        int failures = consecutiveFailures.incrementAndGet();
        if (failures >= failureThreshold || open.get()) {
            openUntilNanos.set(nanoClock.getAsLong() + coolDownNanos);
            open.set(true);
        }
        probeInFlight.set(false);
    }

    public boolean isOpen() {
        return open.get();
    }

    public int failureThreshold() {
        return failureThreshold;
    }

    public long coolDownMillis() {
        return coolDownNanos / 1_000_000L;
    }
}
