package com.amazonaws.services.lambda.runtime;

import com.amazonaws.services.lambda.runtime.logging.LogLevel;

/** Writes to the function's log, one entry per call (as in {@code aws-lambda-java-core}). */
public interface LambdaLogger {
    /** Logs a message. */
    void log(String message);

    /** Logs raw bytes (UTF-8 text). */
    void log(byte[] message);

    /** Logs a message at a level (the text log format writes the message as is). */
    default void log(String message, LogLevel logLevel) {
        log(message);
    }

    /** Logs raw bytes at a level (the text log format writes them as is). */
    default void log(byte[] message, LogLevel logLevel) {
        log(message);
    }
}
