package org.rescoresidecar.bridge.core;

import java.util.Locale;

/** How the model's score combines with the engine's first-pass score inside the window. */
public enum ScoreMode {
    /** The hit's score becomes the model's score (the default; what Elasticsearch's LTR rescorer does). */
    REPLACE,
    /** {@code query_weight * original + model_weight * model}, like Elasticsearch's query rescorer. */
    WEIGHTED;

    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static ScoreMode fromWireName(String name) {
        for (ScoreMode mode : values()) {
            if (mode.wireName().equals(name)) {
                return mode;
            }
        }
        throw new IllegalArgumentException("[sidecar] score_mode must be \"replace\" or \"weighted\", got [" + name + "]");
    }
}
