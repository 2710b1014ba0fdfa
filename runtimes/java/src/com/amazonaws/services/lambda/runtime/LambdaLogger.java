package com.amazonaws.services.lambda.runtime;

/** Writes to the function's log, one entry per call (as in {@code aws-lambda-java-core}). */
public interface LambdaLogger {
    /** Logs a message. */
    void log(String message);

    /** Logs raw bytes (UTF-8 text). */
    void log(byte[] message);
}
