"""SigV4 against a Stratus server with botocore as the signing oracle.

Usage: boto3_auth.py ENDPOINT FIXTURES_DIR, with AWS_SHARED_CREDENTIALS_FILE set to
the server's credentials file. Exits non-zero on the first mismatch.
"""

import datetime
import json
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore.auth
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
cfg = Config(retries={"total_max_attempts": 1})
session = boto3.session.Session()
creds = session.get_credentials()
assert creds is not None and creds.access_key.startswith("AKIA"), "no credentials from the file"


def client(service, **kw):
    return session.client(service, endpoint_url=endpoint, region_name="us-east-1", config=kw.pop("config", cfg), **kw)


lam = client("lambda")
sqs = client("sqs")


def expect_error(call, status, code, message=None, prefix=None):
    try:
        call()
    except ClientError as e:
        err, meta = e.response["Error"], e.response["ResponseMetadata"]
        assert meta["HTTPStatusCode"] == status, (meta["HTTPStatusCode"], e.response)
        assert err["Code"] == code, e.response
        if message is not None:
            assert err["Message"] == message, err["Message"]
        if prefix is not None:
            assert err["Message"].startswith(prefix), err["Message"]
        return err
    raise SystemExit(f"expected {code}")


# Signed by botocore with the server's key: Lambda (REST-JSON, bodies hashed) and
# SQS (JSON protocol) both work.
assert lam.list_functions()["Functions"] == []
url = sqs.create_queue(QueueName="signed")["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody="hello, signed")
got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
assert got[0]["Body"] == "hello, signed", got
expect_error(lambda: lam.get_function(FunctionName="nope"), 404, "ResourceNotFoundException")

# A presigned URL made by botocore works, until it expires.
presigned = lam.generate_presigned_url("list_functions", ExpiresIn=60)
assert "X-Amz-Signature=" in presigned, presigned
with urllib.request.urlopen(presigned) as r:
    assert r.status == 200
    assert json.load(r)["Functions"] == []
short = lam.generate_presigned_url("list_functions", ExpiresIn=1)
time.sleep(2.5)
try:
    urllib.request.urlopen(short)
    raise SystemExit("an expired presigned URL was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
    assert e.headers["x-amzn-ErrorType"] == "InvalidSignatureException", dict(e.headers)
    body = json.load(e)
    assert body["message"].startswith("Signature expired: "), body
# Tampering with a presigned URL breaks it.
try:
    urllib.request.urlopen(presigned.replace("ListFunctions", "x") + "&extra=1")
    raise SystemExit("a tampered presigned URL was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403 and e.headers["x-amzn-ErrorType"] == "InvalidSignatureException"

# The right key id with the wrong secret: AWS's exact error.
bad = client("lambda", aws_access_key_id=creds.access_key, aws_secret_access_key="wrong-secret")
expect_error(
    bad.list_functions,
    403,
    "InvalidSignatureException",
    prefix="The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
)
bad_sqs = client("sqs", aws_access_key_id=creds.access_key, aws_secret_access_key="wrong-secret")
# SQS answers with its own (query-protocol) codes, as botocore reads them from
# x-amzn-query-error.
expect_error(bad_sqs.list_queues, 403, "SignatureDoesNotMatch",
             prefix="The request signature we calculated does not match")

# A key the server does not know.
unknown = client("lambda", aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="x")
expect_error(unknown.list_functions, 403, "UnrecognizedClientException",
             message="The security token included in the request is invalid.")
unknown_sqs = client("sqs", aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="x")
expect_error(unknown_sqs.list_queues, 403, "InvalidClientTokenId",
             message="The security token included in the request is invalid.")

# No signature at all.
unsigned = client("lambda", config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
expect_error(unsigned.list_functions, 403, "MissingAuthenticationTokenException",
             message="Missing Authentication Token")
unsigned_sqs = client("sqs", config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
expect_error(unsigned_sqs.list_queues, 403, "MissingAuthenticationToken",
             message="Missing Authentication Token")

# A signature 10 minutes old (the client's clock is behind): refused as expired.
real_now = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda *a, **k: real_now(*a, **k) - datetime.timedelta(minutes=10)
try:
    err = expect_error(lam.list_functions, 403, "InvalidSignatureException", prefix="Signature expired: ")
    assert "is now earlier than" in err["Message"] and err["Message"].endswith(" - 5 min.)"), err
    expect_error(sqs.list_queues, 403, "SignatureDoesNotMatch", prefix="Signature expired: ")
finally:
    botocore.auth.get_current_datetime = real_now
# ... and 10 minutes ahead.
botocore.auth.get_current_datetime = lambda *a, **k: real_now(*a, **k) + datetime.timedelta(minutes=10)
try:
    expect_error(lam.list_functions, 403, "InvalidSignatureException", prefix="Signature not yet current: ")
finally:
    botocore.auth.get_current_datetime = real_now

# Signed for another region or service.
other_region = session.client("lambda", endpoint_url=endpoint, region_name="eu-west-1", config=cfg)
expect_error(other_region.list_functions, 403, "InvalidSignatureException",
             prefix="Credential should be scoped to a valid region")
assert lam.list_functions()["Functions"] == []

print("boto3 auth: all checks passed")
