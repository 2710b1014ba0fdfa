package com.amazonaws.services.lambda.runtime;

/** The application of a mobile caller (as in {@code aws-lambda-java-core}). */
public interface Client {
    /** The installation id. */
    String getInstallationId();

    /** The application's title. */
    String getAppTitle();

    /** The application's version name. */
    String getAppVersionName();

    /** The application's version code. */
    String getAppVersionCode();

    /** The application's package name. */
    String getAppPackageName();
}
