package org.rescoresidecar.bridge.core;

import java.util.concurrent.ThreadLocalRandom;
import java.util.function.LongSupplier;

/**
 * Stops calling a sidecar that is failing, so a dead or hung sidecar costs searches nothing
 * instead of one timeout per shard, and lets it back in gradually.
 *
 * <ul>
 *   <li><b>closed</b>: every call is made; outcomes go into a sliding time window. When the window
 *   holds at least {@code minCalls} counted calls and the share of failures reaches
 *   {@code failureRate}, the breaker opens; it also opens after {@code consecutiveFailures}
 *   failures with no success between them (0: never), because a window full of healthy calls
 *   would otherwise take most of its length to reach the rate when the sidecar stops answering
 *   altogether. Only the sidecar's own faults are failures (the
 *   caller decides: see {@link SidecarService}); a 4xx is the search's own error and is not counted
 *   at all.</li>
 *   <li><b>open</b>: no call for {@code coolDown}.</li>
 *   <li><b>half-open</b>: one probe at a time; {@code probeSuccesses} successful probes in a row
 *   start the ramp, a failed probe re-opens.</li>
 *   <li><b>ramp-up</b>: a growing share of calls is let through (linearly from 10% to 100% over
 *   {@code ramp}); a failure re-opens, the end of the ramp closes.</li>
 * </ul>
 * A {@link Permit} must be released in {@code finally}: a probe whose caller died of any
 * {@code Throwable} frees its slot instead of leaving the breaker half-open for good.
 */
public final class CircuitBreaker {
    public enum State { CLOSED, OPEN, HALF_OPEN, RAMP_UP }

    private static final int BUCKETS = 10;
    private static final double RAMP_START_SHARE = 0.1;

    private final long windowNanos;
    private final int minCalls;
    private final double failureRate;
    private final long coolDownNanos;
    private final int probeSuccesses;
    private final long rampNanos;
    private final int consecutiveFailures;
    private final LongSupplier nanoClock;

    private final long[] bucketEpoch = new long[BUCKETS];
    private final int[] bucketCalls = new int[BUCKETS];
    private final int[] bucketFailures = new int[BUCKETS];

    private State state = State.CLOSED;
    private long openUntil;
    private long rampStart;
    private int probesInFlight;
    private int probeSuccessesSoFar;
    private int failuresInARow;
    private long opened;

    public CircuitBreaker(long windowMillis, int minCalls, double failureRate, long coolDownMillis, int probeSuccesses,
                          long rampMillis, int consecutiveFailures, LongSupplier nanoClock) {
        if (windowMillis < BUCKETS) {
            throw new IllegalArgumentException("breaker window must be >= " + BUCKETS + " ms, got " + windowMillis);
        }
        if (minCalls < 1) {
            throw new IllegalArgumentException("breaker minimum calls must be >= 1, got " + minCalls);
        }
        if (!(failureRate > 0 && failureRate <= 1)) {
            throw new IllegalArgumentException("breaker failure rate must be in (0, 1], got " + failureRate);
        }
        if (coolDownMillis < 0 || rampMillis < 0) {
            throw new IllegalArgumentException("breaker cool-down and ramp must be >= 0 ms");
        }
        if (probeSuccesses < 1) {
            throw new IllegalArgumentException("breaker probe successes must be >= 1, got " + probeSuccesses);
        }
        if (consecutiveFailures < 0) {
            throw new IllegalArgumentException("breaker consecutive failures must be >= 0, got " + consecutiveFailures);
        }
        this.consecutiveFailures = consecutiveFailures;
        this.windowNanos = windowMillis * 1_000_000L;
        this.minCalls = minCalls;
        this.failureRate = failureRate;
        this.coolDownNanos = coolDownMillis * 1_000_000L;
        this.probeSuccesses = probeSuccesses;
        this.rampNanos = rampMillis * 1_000_000L;
        this.nanoClock = nanoClock;
    }

    /** A permit for one call, or null when the breaker skips it. */
    public Permit tryAcquire() {
        synchronized (this) {
            long now = nanoClock.getAsLong();
            switch (state) {
                case CLOSED:
                    return new Permit(false);
                case OPEN:
                    if (now - openUntil < 0) {
                        return null;
                    }
                    state = State.HALF_OPEN;
                    probesInFlight = 0;
                    probeSuccessesSoFar = 0;
                    // fall through: claim the first probe
                case HALF_OPEN:
                    if (probesInFlight > 0) {
                        return null;
                    }
                    probesInFlight++;
                    return new Permit(true);
                case RAMP_UP:
                default:
                    double share = rampNanos == 0 ? 1 : (double) (now - rampStart) / rampNanos;
                    if (share >= 1) {
                        state = State.CLOSED;
                        return new Permit(false);
                    }
                    return ThreadLocalRandom.current().nextDouble() < Math.max(RAMP_START_SHARE, share) ? new Permit(false) : null;
            }
        }
    }

    /** Whether a call would be considered now, without claiming anything (explain uses it: it never feeds the breaker). */
    public synchronized boolean allowsCalls() {
        return state == State.CLOSED || state == State.RAMP_UP
            || (state == State.OPEN && nanoClock.getAsLong() - openUntil >= 0);
    }

    public synchronized State state() {
        return state;
    }

    public boolean isOpen() {
        return state() != State.CLOSED;
    }

    /** How many times the breaker has opened since start. */
    public synchronized long timesOpened() {
        return opened;
    }

    private void record(boolean failure, long now) {
        long epoch = Math.floorDiv(now, windowNanos / BUCKETS);
        int i = (int) Math.floorMod(epoch, (long) BUCKETS);
        if (bucketEpoch[i] != epoch) {
            bucketEpoch[i] = epoch;
            bucketCalls[i] = 0;
            bucketFailures[i] = 0;
        }
        bucketCalls[i]++;
        if (!failure) {
            failuresInARow = 0;
            return;
        }
        bucketFailures[i]++;
        if (consecutiveFailures > 0 && ++failuresInARow >= consecutiveFailures) {
            open(now);
            return;
        }
        int calls = 0;
        int failures = 0;
        for (int b = 0; b < BUCKETS; b++) {
            if (epoch - bucketEpoch[b] < BUCKETS) {
                calls += bucketCalls[b];
                failures += bucketFailures[b];
            }
        }
        if (calls >= minCalls && failures >= failureRate * calls) {
            open(now);
        }
    }

    private void open(long now) {
        state = State.OPEN;
        openUntil = now + coolDownNanos;
        opened++;
        failuresInARow = 0;
        java.util.Arrays.fill(bucketEpoch, Long.MIN_VALUE);
    }

    /** One call's claim on the breaker; report at most one outcome, and always {@link #release()}. */
    public final class Permit {
        private final boolean probe;
        private boolean done;

        private Permit(boolean probe) {
            this.probe = probe;
        }

        /** The sidecar answered as the contract says (scores, or a fallback that is not load shedding). */
        public void success() {
            synchronized (CircuitBreaker.this) {
                if (done) {
                    return;
                }
                done = true;
                long now = nanoClock.getAsLong();
                if (probe) {
                    probesInFlight--;
                    if (state == State.HALF_OPEN && ++probeSuccessesSoFar >= probeSuccesses) {
                        state = rampNanos == 0 ? State.CLOSED : State.RAMP_UP;
                        rampStart = now;
                    }
                } else if (state == State.CLOSED) {
                    record(false, now);
                }
            }
        }

        /** A fault of the sidecar: connection, timeout, 5xx, malformed or wrong-length answer, load shedding. */
        public void failure() {
            synchronized (CircuitBreaker.this) {
                if (done) {
                    return;
                }
                done = true;
                long now = nanoClock.getAsLong();
                if (probe) {
                    probesInFlight--;
                    open(now);
                } else if (state == State.RAMP_UP) {
                    open(now);
                } else if (state == State.CLOSED) {
                    record(true, now);
                }
            }
        }

        /** Ends the permit; without an outcome (a 4xx, a bug, an Error) the call leaves no trace but frees a probe slot. */
        public void release() {
            synchronized (CircuitBreaker.this) {
                if (done) {
                    return;
                }
                done = true;
                if (probe) {
                    probesInFlight--;
                }
            }
        }

        public boolean isProbe() {
            return probe;
        }
    }
}
