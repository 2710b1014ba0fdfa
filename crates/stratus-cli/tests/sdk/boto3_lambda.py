"""Drives a Stratus server with the real AWS SDK for Python (boto3), as a user would.

Usage: boto3_lambda.py ENDPOINT FIXTURES_DIR. Exits non-zero on the first mismatch.
"""
import base64
import io
import json
import os
import sys
import time
import zipfile

import boto3
from botocore.config import Config

endpoint, fixtures = sys.argv[1], sys.argv[2]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}),
)


def zip_dir(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(os.listdir(path)):
            z.write(os.path.join(path, name), name)
    return buf.getvalue()


code = zip_dir(os.path.join(fixtures, "node"))
created = client.create_function(
    FunctionName="sdk-fn",
    Runtime="nodejs20.x",
    Role="arn:aws:iam::000000000000:role/x",
    Handler="index.handler",
    Code={"ZipFile": code},
    Timeout=10,
    MemorySize=256,
    Environment={"Variables": {"CUSTOM_VAR": "from-sdk"}},
)
assert created["FunctionName"] == "sdk-fn", created
assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:sdk-fn", created
assert created["CodeSize"] == len(code)
assert created["State"] == "Active"

out = client.invoke(FunctionName="sdk-fn", Payload=json.dumps({"hello": "sdk"}), LogType="Tail")
assert out["StatusCode"] == 200, out
assert out["ExecutedVersion"] == "$LATEST"
payload = json.loads(out["Payload"].read())
assert payload["event"] == {"hello": "sdk"}, payload
assert payload["env"]["custom"] == "from-sdk"
log = base64.b64decode(out["LogResult"]).decode()
assert "REPORT RequestId:" in log and "Init Duration" in log, log

err = client.invoke(FunctionName="sdk-fn", Payload=json.dumps({"action": "error"}))
assert err["FunctionError"] == "Unhandled", err
assert json.loads(err["Payload"].read())["errorType"] == "TypeError"

dry = client.invoke(FunctionName="sdk-fn", InvocationType="DryRun")
assert dry["StatusCode"] == 204, dry

fn = client.get_function(FunctionName="sdk-fn")
assert fn["Configuration"]["MemorySize"] == 256
assert [f["FunctionName"] for f in client.list_functions()["Functions"]] == ["sdk-fn"]

conf = client.update_function_configuration(FunctionName="sdk-fn", Timeout=20)
assert conf["Timeout"] == 20
upd = client.update_function_code(FunctionName="sdk-fn", ZipFile=code, Publish=True)
assert upd["CodeSha256"] == created["CodeSha256"]
versions = [v["Version"] for v in client.list_versions_by_function(FunctionName="sdk-fn")["Versions"]]
assert versions == ["$LATEST", "1"], versions
v2 = client.publish_version(FunctionName="sdk-fn", Description="second")
assert v2["Version"] == "1", "unchanged code and config publish no new version"

alias = client.create_alias(FunctionName="sdk-fn", Name="live", FunctionVersion="1")
assert alias["AliasArn"].endswith(":sdk-fn:live")
assert client.get_alias(FunctionName="sdk-fn", Name="live")["FunctionVersion"] == "1"
assert [a["Name"] for a in client.list_aliases(FunctionName="sdk-fn")["Aliases"]] == ["live"]

client.put_function_concurrency(FunctionName="sdk-fn", ReservedConcurrentExecutions=5)
assert client.get_function_concurrency(FunctionName="sdk-fn")["ReservedConcurrentExecutions"] == 5

pc = client.put_provisioned_concurrency_config(FunctionName="sdk-fn", Qualifier="live", ProvisionedConcurrentExecutions=2)
assert pc["RequestedProvisionedConcurrentExecutions"] == 2
for _ in range(200):
    st = client.get_provisioned_concurrency_config(FunctionName="sdk-fn", Qualifier="live")
    if st["Status"] == "READY":
        break
    time.sleep(0.05)
assert st["Status"] == "READY", st
assert st["AvailableProvisionedConcurrentExecutions"] == 2

warm = client.invoke(FunctionName="sdk-fn", Qualifier="live", LogType="Tail")
assert json.loads(warm["Payload"].read())["initType"] == "provisioned-concurrency"
assert "Init Duration" not in base64.b64decode(warm["LogResult"]).decode()

try:
    client.invoke(FunctionName="missing")
    raise SystemExit("expected ResourceNotFoundException")
except client.exceptions.ResourceNotFoundException as e:
    assert "Function not found: arn:aws:lambda:us-east-1:000000000000:function:missing" in str(e), e

try:
    client.put_provisioned_concurrency_config(FunctionName="sdk-fn", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    raise SystemExit("expected InvalidParameterValueException")
except client.exceptions.InvalidParameterValueException:
    pass

client.delete_provisioned_concurrency_config(FunctionName="sdk-fn", Qualifier="live")
client.put_function_concurrency(FunctionName="sdk-fn", ReservedConcurrentExecutions=0)
try:
    client.invoke(FunctionName="sdk-fn")
    raise SystemExit("expected TooManyRequestsException")
except client.exceptions.TooManyRequestsException as e:
    assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded", e.response
    assert e.response["Error"]["Message"] == "Rate Exceeded.", e.response
client.delete_function_concurrency(FunctionName="sdk-fn")

settings = client.get_account_settings()
assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000, settings
client.delete_alias(FunctionName="sdk-fn", Name="live")
client.delete_function(FunctionName="sdk-fn")
try:
    client.get_function(FunctionName="sdk-fn")
    raise SystemExit("expected the function to be gone")
except client.exceptions.ResourceNotFoundException:
    pass
print("boto3: all checks passed")
