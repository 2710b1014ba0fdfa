package com.amazonaws.services.lambda.runtime;

/** The Cognito identity of a caller (as in {@code aws-lambda-java-core}). */
public interface CognitoIdentity {
    /** The identity id. */
    String getIdentityId();

    /** The identity pool id. */
    String getIdentityPoolId();
}
