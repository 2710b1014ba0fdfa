"""A key narrowed by its policy, through boto3: what the policy allows works, the
rest is AccessDeniedException with AWS's message (implicit and explicit deny)."""
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, key_id, secret = sys.argv[1], sys.argv[2], sys.argv[3]
lam = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
    config=Config(retries={"max_attempts": 1}),
)
arn = "arn:aws:lambda:us-east-1:000000000000:function:"
user = "arn:aws:iam::000000000000:user/ci"

out = lam.invoke(FunctionName="authz-dev-target", Payload=b"{}")
assert out["StatusCode"] == 200, out


def denied(call, action, resource, why):
    try:
        call()
    except ClientError as e:
        err = e.response["Error"]
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
        assert err["Code"] == "AccessDeniedException", err
        want = f"User: {user} is not authorized to perform: {action} on resource: {resource} {why}"
        assert err["Message"] == want, (err["Message"], want)
        return
    raise AssertionError(f"{action} on {resource} was allowed")


denied(
    lambda: lam.invoke(FunctionName="authz-dev-other", Payload=b"{}"),
    "lambda:InvokeFunction",
    arn + "authz-dev-other",
    "because no identity-based policy allows the lambda:InvokeFunction action",
)
# A qualifier is another resource: the policy names the unqualified ARN only.
denied(
    lambda: lam.invoke(FunctionName="authz-dev-target", Qualifier="$LATEST", Payload=b"{}"),
    "lambda:InvokeFunction",
    arn + "authz-dev-target:$LATEST",
    "because no identity-based policy allows the lambda:InvokeFunction action",
)
denied(
    lambda: lam.get_function_configuration(FunctionName="authz-dev-target"),
    "lambda:GetFunctionConfiguration",
    arn + "authz-dev-target",
    "with an explicit deny in an identity-based policy",
)
denied(
    lambda: lam.delete_function(FunctionName="authz-dev-target"),
    "lambda:DeleteFunction",
    arn + "authz-dev-target",
    "because no identity-based policy allows the lambda:DeleteFunction action",
)
print("boto3 key policy: all checks passed")
