"""Application Auto Scaling for Lambda provisioned concurrency through the real AWS SDK
for Python (boto3): targets, target tracking policies, scheduled actions, activities,
and the errors of malformed input.

Usage: boto3_autoscaling.py ENDPOINT FIXTURES_DIR. Exits non-zero on the first mismatch.
"""
import datetime
import io
import json
import os
import sys
import time
import zipfile

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, fixtures = sys.argv[1], sys.argv[2]
cfg = Config(retries={"max_attempts": 1})
lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
aas = boto3.client("application-autoscaling", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
# Sends what the SDK would refuse to: wrong types, missing members.
loose = boto3.client(
    "application-autoscaling",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}, parameter_validation=False),
)
DIM = "lambda:function:ProvisionedConcurrency"
RID = "function:scaled:live"


def fails(call, code, *needles):
    try:
        call()
    except ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, (code, e.response)
        for n in needles:
            assert n in err["Message"], (n, err["Message"])
        return err["Message"]
    raise SystemExit(f"expected {code}")


def zip_dir(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(os.listdir(path)):
            z.write(os.path.join(path, name), name)
    return buf.getvalue()


def raw(body, target="AnyScaleFrontendService.DescribeScalableTargets"):
    """POSTs `body` as is, signed for application-autoscaling; returns (status, json)."""
    import urllib.request
    import urllib.error

    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    creds = botocore.session.Session().get_credentials()
    SigV4Auth(creds, "application-autoscaling", "us-east-1").add_auth(req)
    r = urllib.request.Request(req.url, data=body.encode(), headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


lam.create_function(
    FunctionName="scaled",
    Runtime="python3.11",
    Role="arn:aws:iam::000000000000:role/x",
    Handler="app.handler",
    Code={"ZipFile": zip_dir(os.path.join(fixtures, "python"))},
)
version = lam.publish_version(FunctionName="scaled")["Version"]
lam.create_alias(FunctionName="scaled", Name="live", FunctionVersion=version)

# Registering clamps the (absent) provisioned concurrency up to the minimum.
arn = aas.register_scalable_target(
    ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM, MinCapacity=2, MaxCapacity=5
)["ScalableTargetARN"]
assert arn.startswith("arn:aws:application-autoscaling:us-east-1:000000000000:scalable-target/"), arn
pc = lam.get_provisioned_concurrency_config(FunctionName="scaled", Qualifier="live")
assert pc["RequestedProvisionedConcurrentExecutions"] == 2, pc
targets = aas.describe_scalable_targets(ServiceNamespace="lambda")["ScalableTargets"]
assert len(targets) == 1, targets
t = targets[0]
assert (t["ResourceId"], t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"]) == (RID, DIM, 2, 5), t
assert isinstance(t["CreationTime"], datetime.datetime), t
assert t["SuspendedState"] == {
    "DynamicScalingInSuspended": False,
    "DynamicScalingOutSuspended": False,
    "ScheduledScalingSuspended": False,
}, t
assert "AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency" in t["RoleARN"], t
# An update may give one bound only; lowering max below current clamps down.
aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM, MaxCapacity=4)
assert aas.describe_scalable_targets(ServiceNamespace="lambda", ResourceIds=[RID])["ScalableTargets"][0]["MaxCapacity"] == 4
assert aas.describe_scalable_targets(ServiceNamespace="lambda", ResourceIds=["function:other:x"])["ScalableTargets"] == []

acts = aas.describe_scaling_activities(ServiceNamespace="lambda", ResourceId=RID)["ScalingActivities"]
assert acts and acts[0]["Description"] == "Setting desired concurrency to 2.", acts
assert acts[0]["Cause"] == "minimum capacity was set to 2", acts[0]
assert acts[0]["StatusCode"] == "Successful", acts[0]
assert isinstance(acts[0]["StartTime"], datetime.datetime), acts[0]

# Target tracking.
put = aas.put_scaling_policy(
    PolicyName="pc-utilization",
    ServiceNamespace="lambda",
    ResourceId=RID,
    ScalableDimension=DIM,
    PolicyType="TargetTrackingScaling",
    TargetTrackingScalingPolicyConfiguration={
        "TargetValue": 0.7,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"},
        "ScaleInCooldown": 120,
        "ScaleOutCooldown": 0,
    },
)
assert ":scalingPolicy:" in put["PolicyARN"] and put["PolicyARN"].endswith("policyName/pc-utilization"), put
names = sorted(a["AlarmName"] for a in put["Alarms"])
assert len(names) == 2 and "-AlarmHigh-" in names[0] and "-AlarmLow-" in names[1], names
assert names[0].startswith(f"TargetTracking-{RID}-AlarmHigh-"), names
# A customized spec with the Maximum statistic.
aas.put_scaling_policy(
    PolicyName="pc-max",
    ServiceNamespace="lambda",
    ResourceId=RID,
    ScalableDimension=DIM,
    PolicyType="TargetTrackingScaling",
    TargetTrackingScalingPolicyConfiguration={
        "TargetValue": 0.8,
        "CustomizedMetricSpecification": {
            "MetricName": "ProvisionedConcurrencyUtilization",
            "Namespace": "AWS/Lambda",
            "Dimensions": [{"Name": "FunctionName", "Value": "scaled"}, {"Name": "Resource", "Value": "scaled:live"}],
            "Statistic": "Maximum",
            "Unit": "Count",
        },
    },
)
pols = aas.describe_scaling_policies(ServiceNamespace="lambda", ResourceId=RID)["ScalingPolicies"]
assert sorted(p["PolicyName"] for p in pols) == ["pc-max", "pc-utilization"], pols
p = [p for p in pols if p["PolicyName"] == "pc-utilization"][0]
c = p["TargetTrackingScalingPolicyConfiguration"]
assert p["PolicyType"] == "TargetTrackingScaling", p
assert (c["TargetValue"], c["ScaleInCooldown"], c["ScaleOutCooldown"], c["DisableScaleIn"]) == (0.7, 120, 0, False), c
assert c["PredefinedMetricSpecification"]["PredefinedMetricType"] == "LambdaProvisionedConcurrencyUtilization", c
q = aas.describe_scaling_policies(ServiceNamespace="lambda", PolicyNames=["pc-max"])["ScalingPolicies"]
assert q[0]["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]["Statistic"] == "Maximum", q
aas.delete_scaling_policy(PolicyName="pc-max", ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM)
fails(
    lambda: aas.delete_scaling_policy(PolicyName="pc-max", ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM),
    "ObjectNotFoundException",
    "policy name: pc-max",
)

# Scheduled actions.
start = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
aas.put_scheduled_action(
    ServiceNamespace="lambda",
    ScheduledActionName="morning",
    ResourceId=RID,
    ScalableDimension=DIM,
    Schedule="cron(0 8 ? * MON-FRI *)",
    Timezone="Europe/Paris",
    StartTime=start,
    ScalableTargetAction={"MinCapacity": 3, "MaxCapacity": 4},
)
aas.put_scheduled_action(
    ServiceNamespace="lambda",
    ScheduledActionName="once",
    ResourceId=RID,
    ScalableDimension=DIM,
    Schedule="at(2031-06-01T12:00:00)",
    ScalableTargetAction={"MinCapacity": 1},
)
sched = aas.describe_scheduled_actions(ServiceNamespace="lambda", ResourceId=RID)["ScheduledActions"]
assert sorted(s["ScheduledActionName"] for s in sched) == ["morning", "once"], sched
m = [s for s in sched if s["ScheduledActionName"] == "morning"][0]
assert m["Schedule"] == "cron(0 8 ? * MON-FRI *)" and m["Timezone"] == "Europe/Paris", m
assert m["StartTime"] == start, m
assert m["ScalableTargetAction"] == {"MinCapacity": 3, "MaxCapacity": 4}, m
assert ":scheduledAction:" in m["ScheduledActionARN"], m
one = aas.describe_scheduled_actions(ServiceNamespace="lambda", ScheduledActionNames=["once"])["ScheduledActions"]
assert [s["ScheduledActionName"] for s in one] == ["once"] and "Timezone" not in one[0], one
aas.delete_scheduled_action(ServiceNamespace="lambda", ScheduledActionName="once", ResourceId=RID, ScalableDimension=DIM)
fails(
    lambda: aas.delete_scheduled_action(ServiceNamespace="lambda", ScheduledActionName="once", ResourceId=RID, ScalableDimension=DIM),
    "ObjectNotFoundException",
    "scheduled action name: once",
)

# Paging.
page = aas.describe_scheduled_actions(ServiceNamespace="lambda", MaxResults=1)
assert len(page["ScheduledActions"]) == 1 and "NextToken" not in page, page
pager = aas.get_paginator("describe_scaling_activities")
listed = [a for pg in pager.paginate(ServiceNamespace="lambda", PaginationConfig={"PageSize": 1}) for a in pg["ScalingActivities"]]
assert len(listed) >= 1, listed
fails(lambda: aas.describe_scalable_targets(ServiceNamespace="lambda", NextToken="garbage"), "InvalidNextTokenException")

# Malformed input.
fails(
    lambda: aas.register_scalable_target(ServiceNamespace="ecs", ResourceId="service/a/b", ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=2),
    "ValidationException",
    "Unsupported service namespace ecs",
)
fails(
    lambda: aas.register_scalable_target(ServiceNamespace="lambda", ResourceId="scaled:live", ScalableDimension=DIM, MinCapacity=1, MaxCapacity=2),
    "ValidationException",
    "function:NAME:ALIAS",
)
fails(
    lambda: aas.register_scalable_target(ServiceNamespace="lambda", ResourceId="function:scaled:nope", ScalableDimension=DIM, MinCapacity=1, MaxCapacity=2),
    "ValidationException",
    "scaled:nope",
)
fails(
    lambda: aas.register_scalable_target(ServiceNamespace="lambda", ResourceId="function:scaled:live2", ScalableDimension=DIM),
    "ValidationException",
)
fails(
    lambda: aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM, MinCapacity=5, MaxCapacity=1),
    "ValidationException",
    "cannot be greater than maximum",
)
fails(
    lambda: aas.put_scaling_policy(PolicyName="steps", ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM, PolicyType="StepScaling", StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity"}),
    "ValidationException",
    "TargetTrackingScaling",
)
fails(
    lambda: aas.put_scaling_policy(
        PolicyName="cpu", ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={"TargetValue": 50, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}},
    ),
    "ValidationException",
    "ECSServiceAverageCPUUtilization",
)
fails(
    lambda: aas.put_scaling_policy(
        PolicyName="x", ServiceNamespace="lambda", ResourceId="function:scaled:1", ScalableDimension=DIM, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={"TargetValue": 0.5, "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}},
    ),
    "ObjectNotFoundException",
    "No scalable target registered",
)
fails(
    lambda: aas.put_scheduled_action(ServiceNamespace="lambda", ScheduledActionName="bad", ResourceId=RID, ScalableDimension=DIM, Schedule="cron(0 8 * * * *)"),
    "ValidationException",
    "Invalid schedule",
)
fails(
    lambda: aas.put_scheduled_action(ServiceNamespace="lambda", ScheduledActionName="bad", ResourceId=RID, ScalableDimension=DIM, Schedule="rate(1 hour)", Timezone="Mars/Olympus"),
    "ValidationException",
    "Mars/Olympus",
)
fails(
    lambda: aas.put_scheduled_action(ServiceNamespace="lambda", ScheduledActionName="a:b", ResourceId=RID, ScalableDimension=DIM, Schedule="rate(1 hour)"),
    "ValidationException",
    "scheduledActionName",
)
fails(lambda: loose.describe_scalable_targets(), "ValidationException", "serviceNamespace")
fails(
    lambda: loose.register_scalable_target(ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM, MinCapacity="many"),
    "SerializationException",
)
status, body = raw("this is not json")
assert status == 400 and body["__type"] == "SerializationException", (status, body)
status, body = raw("{}", target="AnyScaleFrontendService.PutLifecycleHook")
assert status == 400, (status, body)

# Deregistering forgets the target, its policies and scheduled actions; the
# provisioned concurrency stays.
aas.deregister_scalable_target(ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM)
assert aas.describe_scalable_targets(ServiceNamespace="lambda")["ScalableTargets"] == []
assert aas.describe_scaling_policies(ServiceNamespace="lambda")["ScalingPolicies"] == []
assert aas.describe_scheduled_actions(ServiceNamespace="lambda")["ScheduledActions"] == []
fails(
    lambda: aas.deregister_scalable_target(ServiceNamespace="lambda", ResourceId=RID, ScalableDimension=DIM),
    "ObjectNotFoundException",
    "No scalable target registered for service namespace: lambda, resource ID: function:scaled:live",
)
pc = lam.get_provisioned_concurrency_config(FunctionName="scaled", Qualifier="live")
assert pc["RequestedProvisionedConcurrentExecutions"] == 2, pc
print("boto3 application-autoscaling: all checks passed")
