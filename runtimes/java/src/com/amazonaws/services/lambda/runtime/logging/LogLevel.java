package com.amazonaws.services.lambda.runtime.logging;

/** Log levels of {@code LambdaLogger.log(message, level)} (as in {@code aws-lambda-java-core} 1.2.3). */
public enum LogLevel {
    UNDEFINED,
    TRACE,
    DEBUG,
    INFO,
    WARN,
    ERROR,
    FATAL;

    /** The level named {@code name} (case-insensitive); an unknown name is an error. */
    public static LogLevel fromString(String name) {
        try {
            return LogLevel.valueOf(name.toUpperCase(java.util.Locale.ROOT));
        } catch (Exception e) {
            throw new IllegalArgumentException("Invalid log level: '" + name
                    + "' expected one of [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]");
        }
    }
}
