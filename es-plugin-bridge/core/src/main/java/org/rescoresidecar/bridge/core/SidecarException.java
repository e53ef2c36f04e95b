package org.rescoresidecar.bridge.core;

/** A failed sidecar call, classified for the fallback counter and for {@code explain}. */
public final class SidecarException extends Exception {
    private static final long serialVersionUID = 1L;
    private final FallbackReason reason;

    public SidecarException(FallbackReason reason, String message) {
        super(message);
        this.reason = reason;
    }

    public SidecarException(FallbackReason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
    }

    public FallbackReason reason() {
        return reason;
    }
}
