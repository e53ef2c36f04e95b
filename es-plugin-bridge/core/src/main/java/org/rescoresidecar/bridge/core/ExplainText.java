package org.rescoresidecar.bridge.core;

import java.util.Locale;

/** The value and text of the rescorer's explanation, the same in both engines. */
public final class ExplainText {
    private ExplainText() {}

    /** One explanation node: the value it reports and its description. */
    public record Line(float value, String text) {}

    public static Line outsideWindow(float firstPass) {
        return new Line(TailScores.below(firstPass), String.format(Locale.ROOT,
            "sidecar rescore: outside the rescore window: placed below every model-scored hit, first-pass order kept "
                + "(first-pass score %s)", firstPass));
    }

    public static Line fellBack(FallbackMemo.Entry memo) {
        return new Line(memo.score(), "sidecar rescore: " + memo.how());
    }

    public static Line explainCallFailed(SidecarService.Outcome outcome, float firstPass) {
        return new Line(firstPass, "sidecar rescore: explain's own call kept the baseline (" + outcome.reason().label() + ": "
            + outcome.detail() + "); the search's score for this hit cannot be recomputed, first-pass score shown");
    }

    public static Line rescored(RescoreParams params, SidecarService.Outcome outcome, float firstPass, double model, String id) {
        String how = params.scoreMode() == ScoreMode.REPLACE
            ? "score_mode replace"
            : String.format(Locale.ROOT, "score_mode weighted: %s * first-pass + %s * model", params.queryWeight(), params.modelWeight());
        return new Line(params.combine(firstPass, model), String.format(Locale.ROOT,
            "sidecar rescore: model %s version %s variant %s, %s, item id [%s]", outcome.result().model(), outcome.result().version(),
            outcome.result().variant(), how, id));
    }
}
