package org.rescoresidecar.bridge.core;

/** Why a shard kept its baseline order. Label values of the bridge's fallback counter. */
public enum FallbackReason {
    /** No answer within the budget (connect or response). */
    TIMEOUT("timeout"),
    /** Connection refused or reset: the sidecar is not running. */
    UNAVAILABLE("sidecar_unavailable"),
    /** The sidecar answered with a 5xx (or another non-2xx, non-4xx) status: its fault. */
    HTTP_ERROR("http_error"),
    /** The sidecar refused the request with a 4xx (unknown model, bad feature value, too large): the search's own error. */
    REQUEST_ERROR("request_error"),
    /** The body was not the contract's JSON (or a score was not a finite number). */
    MALFORMED_RESPONSE("malformed_response"),
    /** {@code scores} did not have one entry per hit. */
    WRONG_LENGTH("wrong_length"),
    /** The sidecar itself fell back (its {@code fallback} field was set; the reasons are counted apart). */
    SIDECAR_FALLBACK("sidecar_fallback"),
    /** The breaker is open after repeated failures: no call was made. */
    BREAKER_OPEN("breaker_open"),
    /** Anything else (e.g. the search thread was interrupted). */
    ERROR("error");

    private final String label;

    FallbackReason(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }
}
