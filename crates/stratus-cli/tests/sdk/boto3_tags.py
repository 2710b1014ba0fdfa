"""Tags and GetFunction's Code.Location through the real AWS SDK for Python (boto3).

Usage: boto3_tags.py ENDPOINT FIXTURES_DIR. Exits non-zero on the first mismatch.
"""
import hashlib
import io
import os
import sys
import urllib.error
import urllib.request
import zipfile

import boto3
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, fixtures = sys.argv[1], sys.argv[2]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}),
)
ARN = "arn:aws:lambda:us-east-1:000000000000:function:tagged"


def zip_dir(path, extra=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(os.listdir(path)):
            z.write(os.path.join(path, name), name)
        if extra:
            z.writestr("extra.txt", extra)
    return buf.getvalue()


def fails(call, code, *needles, status=400):
    """Runs call, which must fail with error `code` and a message holding every needle."""
    try:
        call()
    except ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, (code, e.response)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
        for n in needles:
            assert n in err["Message"], (n, err["Message"])
        return err["Message"]
    raise SystemExit(f"expected {code}")


def presign(url):
    """`url` presigned for GET by botocore with the client's credentials."""
    req = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(boto3.Session().get_credentials(), "lambda", "us-east-1", expires=60).add_auth(req)
    return req.url


def download(url):
    with urllib.request.urlopen(url) as r:
        assert r.headers["Content-Type"] == "application/zip", r.headers
        return r.read()


code = zip_dir(os.path.join(fixtures, "node"))
client.create_function(
    FunctionName="tagged",
    Runtime="nodejs20.x",
    Role="arn:aws:iam::000000000000:role/x",
    Handler="index.handler",
    Code={"ZipFile": code},
    Tags={"team": "core", "cost-center": "42"},
)
fn = client.get_function(FunctionName="tagged")
assert fn["Tags"] == {"team": "core", "cost-center": "42"}, fn["Tags"]

# Code.Location downloads exactly the package that was uploaded.
assert fn["Code"]["RepositoryType"] == "S3", fn["Code"]
location = fn["Code"]["Location"]
assert location.startswith(endpoint + "/stratus/v1/code/"), location
got = download(location)
# The URL is presigned (10 minutes, as Lambda's): without its signature it is refused.
try:
    download(location.split("?")[0])
    raise SystemExit("Code.Location without its signature was served")
except urllib.error.HTTPError as e:
    assert e.code == 403 and e.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException", e.code
assert hashlib.sha256(got).digest() == hashlib.sha256(code).digest()
assert got == code

# A published version keeps its own package after $LATEST's code changes.
client.publish_version(FunctionName="tagged")
code2 = zip_dir(os.path.join(fixtures, "node"), extra="v2")
client.update_function_code(FunctionName="tagged", ZipFile=code2)
v1 = client.get_function(FunctionName="tagged", Qualifier="1")
assert download(v1["Code"]["Location"]) == code
latest = client.get_function(FunctionName="tagged")
assert download(latest["Code"]["Location"]) == code2
assert v1["Tags"] == latest["Tags"] == {"team": "core", "cost-center": "42"}

# A bad or unknown hash is a 404 with a reason.
for bad, needle in [
    ("0" * 64, "No code package with sha256 " + "0" * 64),
    ("not-a-hash", "64 lowercase hex"),
    ("..%2F..%2Fstate.db", "64 lowercase hex"),
]:
    try:
        download(presign(endpoint + "/stratus/v1/code/" + bad))
        raise SystemExit("expected a 404 for " + bad)
    except urllib.error.HTTPError as e:
        assert e.code == 404, (bad, e.code)
        assert e.headers["x-amzn-ErrorType"] == "ResourceNotFoundException", e.headers
        assert needle in e.read().decode(), bad

# TagResource merges, UntagResource removes, ListTags lists.
client.tag_resource(Resource=ARN, Tags={"team": "platform", "env": "dev"})
assert client.list_tags(Resource=ARN)["Tags"] == {
    "team": "platform",
    "cost-center": "42",
    "env": "dev",
}
client.untag_resource(Resource=ARN, TagKeys=["cost-center", "env", "absent"])
assert client.list_tags(Resource=ARN)["Tags"] == {"team": "platform"}
assert client.get_function(FunctionName="tagged")["Tags"] == {"team": "platform"}

# Validation, as Lambda does it; nothing changes on a refused request.
many = {f"k{i}": "v" for i in range(50)}
fails(
    lambda: client.tag_resource(Resource=ARN, Tags=many),
    "InvalidParameterValueException",
    "51 tags",
    "at most 50",
)
fails(
    lambda: client.tag_resource(Resource=ARN, Tags={"aws:owner": "me"}),
    "InvalidParameterValueException",
    "'aws:owner'",
    "reserved",
)
fails(
    lambda: client.tag_resource(Resource=ARN, Tags={"k" * 129: "v"}),
    "ValidationException",
    "at 'tags'",
    "less than or equal to 128",
)
fails(
    lambda: client.tag_resource(Resource=ARN, Tags={"long": "v" * 257}),
    "ValidationException",
    "at 'tags.long'",
    "less than or equal to 256",
)
assert client.list_tags(Resource=ARN)["Tags"] == {"team": "platform"}
fails(
    lambda: client.list_tags(Resource=ARN.replace(":tagged", ":missing")),
    "ResourceNotFoundException",
    "Function not found: arn:aws:lambda:us-east-1:000000000000:function:missing",
    status=404,
)
fails(
    lambda: client.tag_resource(Resource="tagged", Tags={"a": "b"}),
    "ValidationException",
    "Value 'tagged' at 'resource'",
    "regular expression pattern",
)
fails(
    lambda: client.tag_resource(Resource=ARN + ":1", Tags={"a": "b"}),
    "InvalidParameterValueException",
    "not to versions or aliases",
    ARN,
)
fails(
    lambda: client.create_function(
        FunctionName="reserved-tags",
        Runtime="nodejs20.x",
        Role="arn:aws:iam::000000000000:role/x",
        Handler="index.handler",
        Code={"ZipFile": code},
        Tags={"aws:cloudformation:stack-name": "x"},
    ),
    "InvalidParameterValueException",
    "reserved",
)
fails(
    lambda: client.get_function(FunctionName="reserved-tags"),
    "ResourceNotFoundException",
    status=404,
)

# Deleting the function deletes its tags: a new function of that name has none.
client.delete_function(FunctionName="tagged")
fails(lambda: client.list_tags(Resource=ARN), "ResourceNotFoundException", status=404)
client.create_function(
    FunctionName="tagged",
    Runtime="nodejs20.x",
    Role="arn:aws:iam::000000000000:role/x",
    Handler="index.handler",
    Code={"ZipFile": code},
)
assert client.list_tags(Resource=ARN)["Tags"] == {}
print("boto3 tags: all checks passed")
