package com.amazonaws.services.lambda.runtime;

/**
 * The invocation's context, as {@code aws-lambda-java-core} defines it. Stratus ships
 * this interface (same name, same methods) because Maven Central cannot be reached
 * where Stratus is built; handler code compiled against the official jar runs
 * unchanged.
 */
public interface Context {
    /** The request id of this invocation. */
    String getAwsRequestId();

    /** The CloudWatch Logs group of the function. */
    String getLogGroupName();

    /** The log stream of this execution environment. */
    String getLogStreamName();

    /** The function's name. */
    String getFunctionName();

    /** The version being run ({@code $LATEST} or a number). */
    String getFunctionVersion();

    /** The ARN the caller used (with its qualifier, if any). */
    String getInvokedFunctionArn();

    /** The Cognito identity of a mobile caller, or null. */
    CognitoIdentity getIdentity();

    /** The client context of a mobile caller, or null. */
    ClientContext getClientContext();

    /** Milliseconds left before the invocation times out. */
    int getRemainingTimeInMillis();

    /** The memory configured for the function, in MB. */
    int getMemoryLimitInMB();

    /** A logger that writes to the function's log stream. */
    LambdaLogger getLogger();
}
