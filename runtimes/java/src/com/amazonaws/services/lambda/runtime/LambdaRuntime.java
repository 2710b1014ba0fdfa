package com.amazonaws.services.lambda.runtime;

/** The process-wide logger (as in {@code aws-lambda-java-core}). */
public final class LambdaRuntime {
    private LambdaRuntime() {}

    private static volatile LambdaLogger logger = new LambdaLogger() {
        @Override
        public void log(String message) {
            System.out.print(message);
        }

        @Override
        public void log(byte[] message) {
            System.out.write(message, 0, message.length);
        }
    };

    /** The logger of the running function. */
    public static LambdaLogger getLogger() {
        return logger;
    }

    /** Set once by the runtime client at start. */
    public static void setLogger(LambdaLogger l) {
        logger = l;
    }
}
