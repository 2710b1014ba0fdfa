"""A Lambda handler, unchanged from what runs on AWS."""
import os

import six  # from requirements.txt: packaged by `stratus deploy`

COUNT = 0


def hello(event, context):
    global COUNT
    COUNT += 1
    print(f"hello from {context.function_name} request {context.aws_request_id}")
    return {
        "message": f"Hello, {event.get('name', 'world')}!",
        "invocation": COUNT,
        "initializationType": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "remainingMs": context.get_remaining_time_in_millis(),
        "six": six.__version__,
    }
