// A Lambda handler, unchanged from what runs on AWS.
exports.handler = async (event, context) => {
  console.log('hello from', context.functionName, 'request', context.awsRequestId);
  return {
    message: `Hello, ${event.name || 'world'}!`,
    coldStart: !global.__warm,
    initializationType: process.env.AWS_LAMBDA_INITIALIZATION_TYPE,
    remainingMs: context.getRemainingTimeInMillis(),
    invocation: (global.__count = (global.__count || 0) + 1),
    warm: (global.__warm = true),
  };
};
