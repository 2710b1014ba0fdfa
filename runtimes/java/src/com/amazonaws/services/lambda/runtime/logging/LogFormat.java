package com.amazonaws.services.lambda.runtime.logging;

/** Log formats of a function (as in {@code aws-lambda-java-core} 1.2.3); Stratus writes TEXT. */
public enum LogFormat {
    JSON,
    TEXT;

    /** The format named {@code name} (case-insensitive). */
    public static LogFormat fromString(String name) {
        try {
            return LogFormat.valueOf(name.toUpperCase(java.util.Locale.ROOT));
        } catch (Exception e) {
            throw new IllegalArgumentException("Invalid log format: '" + name + "' expected one of [JSON, TEXT]");
        }
    }
}
