package org.rescoresidecar.bridge.core;

/**
 * One window hit as sent to the sidecar: its item id (from {@code id_field}), first-pass score and
 * the numeric doc values of the requested fields ({@code NaN} where the document has no value; it
 * is then left out of {@code features}, which the sidecar treats as missing).
 */
public final class HitInput {
    private final String id;
    private final float score;
    private final double[] features;

    public HitInput(String id, float score, double[] features) {
        this.id = id == null ? "" : id;
        this.score = score;
        this.features = features;
    }

    public String id() { return id; }
    public float score() { return score; }
    public double[] features() { return features; }
}
