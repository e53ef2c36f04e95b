package org.rescoresidecar.bridge.core;

/** A valid {@code POST /v1/rescore} answer: one finite score per hit plus the serving metadata. */
public final class SidecarResult {
    private final double[] scores;
    private final String model;
    private final String version;
    private final String variant;
    private final String fallback;
    private final long tookMicros;

    public SidecarResult(double[] scores, String model, String version, String variant, String fallback, long tookMicros) {
        this.scores = scores;
        this.model = model;
        this.version = version;
        this.variant = variant;
        this.fallback = fallback;
        this.tookMicros = tookMicros;
    }

    public double[] scores() { return scores; }
    public String model() { return model; }
    public String version() { return version; }
    public String variant() { return variant; }
    /** null, or the sidecar's own fallback reason (its scores are then the incoming ones). */
    public String fallback() { return fallback; }
    public long tookMicros() { return tookMicros; }
}
