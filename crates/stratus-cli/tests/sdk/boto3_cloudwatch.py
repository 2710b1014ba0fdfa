"""The CloudWatch metric API through the real AWS SDK for Python (boto3), in both
wire protocols of CloudWatch's model: AWS JSON 1.0 (what botocore picks) and Smithy
RPC v2 CBOR (the model's default, forced through a copy of the installed model
whose `protocols` lists only it).

Usage: boto3_cloudwatch.py ENDPOINT FIXTURES_DIR. The server has run function `m`
4 times (once as `m:1`, once with a function error). Exits non-zero on the first
mismatch.
"""
import datetime
import gzip
import json
import os
import sys
import tempfile

import botocore
import botocore.session

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]


def client(protocol):
    session = botocore.session.get_session()
    if protocol != "json":
        src = os.path.join(os.path.dirname(botocore.__file__), "data", "cloudwatch", "2010-08-01")
        model = json.load(gzip.open(os.path.join(src, "service-2.json.gz")))
        model["metadata"]["protocols"] = [protocol]
        model["metadata"]["protocol"] = protocol
        root = tempfile.mkdtemp()
        dst = os.path.join(root, "cloudwatch", "2010-08-01")
        os.makedirs(dst)
        with open(os.path.join(dst, "service-2.json"), "w") as f:
            json.dump(model, f)
        session.set_config_variable("data_path", root)
    cw = boto3.Session(botocore_session=session).client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    assert cw.meta.service_model.resolved_protocol == protocol, cw.meta.service_model.resolved_protocol
    return cw


def check(cw):
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(minutes=1)
    FN = [{"Name": "FunctionName", "Value": "m"}]


    def stats(metric, dims, **kw):
        r = cw.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName=metric, Dimensions=dims,
            StartTime=start, EndTime=end, Period=7200, **kw)
        return r


    r = stats("Invocations", FN, Statistics=["Sum", "SampleCount"])
    assert r["Label"] == "Invocations", r
    assert len(r["Datapoints"]) == 1, r
    dp = r["Datapoints"][0]
    assert dp["Sum"] == 4.0 and dp["SampleCount"] == 4.0, dp
    assert dp["Unit"] == "Count", dp
    assert isinstance(dp["Timestamp"], datetime.datetime), dp
    assert start - datetime.timedelta(minutes=1) <= dp["Timestamp"] <= end, dp

    r = stats("Errors", FN, Statistics=["Sum"])
    assert r["Datapoints"][0]["Sum"] == 1.0, r

    res = FN + [{"Name": "Resource", "Value": "m:1"}]
    r = stats("Invocations", res, Statistics=["Sum"])
    assert r["Datapoints"][0]["Sum"] == 1.0, r

    r = stats("Duration", FN, Statistics=["Average", "Maximum", "Minimum"],
              ExtendedStatistics=["p50", "p99"])
    dp = r["Datapoints"][0]
    assert dp["Unit"] == "Milliseconds", dp
    assert 0 < dp["Minimum"] <= dp["Average"] <= dp["Maximum"], dp
    p99 = dp["ExtendedStatistics"]["p99"]
    assert abs(p99 - dp["Maximum"]) <= dp["Maximum"] * 0.011, dp
    assert dp["ExtendedStatistics"]["p50"] <= p99, dp

    r = stats("Invocations", [{"Name": "FunctionName", "Value": "nope"}], Statistics=["Sum"])
    assert r["Datapoints"] == [], r

    # GetMetricData, newest first by default, one-minute periods.
    r = cw.get_metric_data(
        StartTime=start, EndTime=end,
        MetricDataQueries=[
            {"Id": "inv", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations", "Dimensions": FN}, "Period": 60, "Stat": "Sum"}},
            {"Id": "p90", "Label": "slow", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Duration", "Dimensions": FN}, "Period": 300, "Stat": "p90"}},
        ])
    by_id = {x["Id"]: x for x in r["MetricDataResults"]}
    assert sum(by_id["inv"]["Values"]) == 4.0, r
    assert by_id["inv"]["StatusCode"] == "Complete", r
    assert len(by_id["inv"]["Timestamps"]) == len(by_id["inv"]["Values"]), r
    ts = by_id["inv"]["Timestamps"]
    assert ts == sorted(ts, reverse=True), ts
    assert by_id["p90"]["Label"] == "slow" and by_id["p90"]["Values"][0] > 0, r

    # ListMetrics with a dimension filter; the paginator works too.
    r = cw.list_metrics(Namespace="AWS/Lambda", MetricName="Invocations",
                        Dimensions=[{"Name": "Resource"}])
    dims = sorted(tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in r["Metrics"])
    assert (("FunctionName", "m"), ("Resource", "m:1")) in dims, dims
    assert all(any(n == "Resource" for n, _ in d) for d in dims), dims
    names = {m["MetricName"] for p in cw.get_paginator("list_metrics").paginate(Namespace="AWS/Lambda") for m in p["Metrics"]}
    for want in ["Invocations", "Errors", "Duration", "ColdStarts", "ConcurrentExecutions"]:
        assert want in names, names

    # Errors in the protocol's shape, with the query-compatible codes.
    def fails(code, **kw):
        try:
            cw.get_metric_statistics(**kw)
        except ClientError as e:
            assert e.response["Error"]["Code"] == code, e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
            return e.response["Error"]["Message"]
        raise AssertionError(f"expected {code}")

    msg = fails("InvalidParameterValue", Namespace="AWS/Lambda", MetricName="Invocations",
                StartTime=start, EndTime=end, Period=90, Statistics=["Sum"])
    assert "multiple of 60" in msg, msg
    fails("InvalidParameterCombination", Namespace="AWS/Lambda", MetricName="Invocations",
          StartTime=start, EndTime=end, Period=60)
    fails("InvalidParameterCombination", Namespace="AWS/Lambda", MetricName="Invocations",
          StartTime=now - datetime.timedelta(days=3), EndTime=end, Period=60, Statistics=["Sum"])


for protocol in ["json", "smithy-rpc-v2-cbor", "query"]:
    check(client(protocol))
    print("checked", protocol)
print("boto3 cloudwatch: all checks passed")
