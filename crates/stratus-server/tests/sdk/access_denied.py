"""Drives an authorizing endpoint with boto3: the requests botocore builds are
classified into the expected actions and resources, and denials parse as the
AccessDeniedException / AccessDenied errors the AWS SDKs know, with AWS's text.
Allowed calls answer a `Classified` error whose message is "action resource[, ...]".
Usage: access_denied.py ENDPOINT"""
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
cfg = Config(retries={"max_attempts": 1}, region_name="us-east-1")
kw = dict(endpoint_url=endpoint, aws_access_key_id="AKIDTEST", aws_secret_access_key="s", config=cfg)
lam = boto3.client("lambda", **kw)
sqs = boto3.client("sqs", **kw)

USER = "arn:aws:iam::000000000000:user/ci"
FN = "arn:aws:lambda:us-east-1:000000000000:function:hello"
JOBS = "arn:aws:sqs:us-east-1:000000000000:jobs"
URL = endpoint + "/000000000000/"


def error(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("no error")


def expect(got, code, message, status):
    assert got == (code, message, status), f"{got!r} != {(code, message, status)!r}"


def implicit(action, resource):
    return f"User: {USER} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"


# Lambda: denied and allowed, every FunctionName form normalized.
expect(error(lambda: lam.invoke(FunctionName="hello", Payload=b"{}")), "AccessDeniedException", implicit("lambda:InvokeFunction", FN), 403)
expect(error(lambda: lam.list_functions()), "AccessDeniedException", implicit("lambda:ListFunctions", "*"), 403)
expect(error(lambda: lam.get_function(FunctionName="hello")), "Classified", f"lambda:GetFunction {FN}", 400)
expect(
    error(lambda: lam.get_function(FunctionName="arn:aws:lambda:eu-west-1:123456789012:function:hello:prod")),
    "Classified", f"lambda:GetFunction {FN}:prod", 400,
)
expect(error(lambda: lam.get_function(FunctionName="123456789012:function:hello", Qualifier="7")), "Classified", f"lambda:GetFunction {FN}:7", 400)
# A policy on the unqualified ARN does not cover an alias.
expect(error(lambda: lam.invoke(FunctionName="hello", Qualifier="live", Payload=b"{}")), "AccessDeniedException", implicit("lambda:InvokeFunction", FN + ":live"), 403)

# SQS (JSON protocol): resources from QueueUrl, batches as their single action,
# messages with the action in lower case as SQS writes it.
expect(error(lambda: sqs.send_message(QueueUrl=URL + "jobs", MessageBody="x")), "Classified", f"sqs:SendMessage {JOBS}", 400)
expect(
    error(lambda: sqs.send_message_batch(QueueUrl=URL + "jobs", Entries=[{"Id": "1", "MessageBody": "x"}])),
    "Classified", f"sqs:SendMessage {JOBS}", 400,
)
expect(error(lambda: sqs.get_queue_url(QueueName="jobs")), "Classified", f"sqs:GetQueueUrl {JOBS}", 400)
expect(
    error(lambda: sqs.send_message(QueueUrl=URL + "other", MessageBody="x")),
    "AccessDenied", implicit("sqs:sendmessage", "arn:aws:sqs:us-east-1:000000000000:other"), 403,
)
expect(
    error(lambda: sqs.purge_queue(QueueUrl=URL + "jobs")),
    "AccessDenied",
    f"User: {USER} is not authorized to perform: sqs:purgequeue on resource: {JOBS} with an explicit deny in an identity-based policy",
    403,
)
print("done")
