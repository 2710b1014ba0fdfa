package com.amazonaws.services.lambda.runtime;

/**
 * A handler whose event is deserialized to {@code I} and whose result is serialized
 * from {@code O} (as in {@code aws-lambda-java-core}).
 */
public interface RequestHandler<I, O> {
    /** Handles one invocation. */
    O handleRequest(I input, Context context);
}
