package com.amazonaws.services.lambda.runtime;

import java.util.Map;

/** The client context a mobile SDK caller sends (as in {@code aws-lambda-java-core}). */
public interface ClientContext {
    /** The calling application. */
    Client getClient();

    /** Custom values set by the caller. */
    Map<String, String> getCustom();

    /** Environment values reported by the caller's SDK. */
    Map<String, String> getEnvironment();
}
