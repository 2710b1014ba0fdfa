"""One node of a Stratus cluster, through boto3: the function deployed through
another node is listed and answers here.

Usage: boto3_cluster.py ENDPOINT FUNCTION EXPECTED_MESSAGE. Exits non-zero on a mismatch.
"""
import json
import sys

import boto3
from botocore.config import Config

endpoint, function, expected = sys.argv[1], sys.argv[2], sys.argv[3]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}),
)
names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
assert function in names, names
out = client.invoke(FunctionName=function, Payload=json.dumps({"name": "boto3"}))
assert out["StatusCode"] == 200, out
assert "FunctionError" not in out, out
payload = json.loads(out["Payload"].read())
assert payload["message"] == expected, payload
print("done", endpoint)
