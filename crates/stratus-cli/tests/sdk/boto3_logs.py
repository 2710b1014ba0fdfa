"""The CloudWatch Logs read API through the real AWS SDK for Python (boto3).

Usage: boto3_logs.py ENDPOINT FIXTURES_DIR. Creates a Python function, invokes it,
and reads its log group, streams and events back with the `logs` client: paging
every call, filter patterns, a follow loop as `aws logs tail --follow` runs it,
and the errors of malformed calls. Exits non-zero on the first mismatch.
"""
import io
import json
import os
import re
import sys
import threading
import time
import zipfile

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError
import urllib.request
import urllib.error

endpoint, fixtures = sys.argv[1], sys.argv[2]
cfg = Config(retries={"max_attempts": 1})
lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
logs = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
GROUP = "/aws/lambda/logged"


def zip_dir(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(os.listdir(path)):
            z.write(os.path.join(path, name), name)
    return buf.getvalue()


def invoke(payload):
    r = lam.invoke(FunctionName="logged", Payload=json.dumps(payload).encode())
    assert r["StatusCode"] == 200 and "FunctionError" not in r, r
    return json.loads(r["Payload"].read())


def fails(call, code, *needles):
    try:
        call()
    except ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, (code, e.response)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
        for n in needles:
            assert n in err["Message"], (n, err["Message"])
        return err["Message"]
    raise SystemExit(f"expected {code}")


def wait_for(what, check, timeout=20):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def filtered(**kw):
    """Every event FilterLogEvents returns for kw, over all its pages."""
    out, token, pages = [], None, 0
    while True:
        args = dict(kw, logGroupName=GROUP)
        if token:
            args["nextToken"] = token
        r = logs.filter_log_events(**args)
        out += r["events"]
        pages += 1
        token = r.get("nextToken")
        if not token:
            return out, pages


def wait_reports(n):
    """Waits until every line of n invocations is stored (REPORT comes last)."""
    wait_for(f"{n} REPORT lines", lambda: len(filtered(filterPattern='"REPORT RequestId:"')[0]) >= n)


lam.create_function(
    FunctionName="logged",
    Runtime="python3.11",
    Role="arn:aws:iam::000000000000:role/x",
    Handler="app.handler",
    Code={"ZipFile": zip_dir(os.path.join(fixtures, "python"))},
)
t0 = int(time.time() * 1000)
for word in ["alpha", "beta", "gamma alpha"]:
    invoke({"word": word})
# Two at once: a second environment, so a second log stream.
threads = [
    threading.Thread(target=invoke, args=({"action": "sleep", "ms": 800},)) for _ in range(2)
]
for t in threads:
    t.start()
for t in threads:
    t.join()

# --- DescribeLogGroups
groups = wait_for(
    "the log group",
    lambda: logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/log")["logGroups"],
)
assert [g["logGroupName"] for g in groups] == [GROUP], groups
wait_reports(5)
g = groups[0]
assert g["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}:*", g
assert g["logGroupArn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}", g
assert t0 - 5000 <= g["creationTime"] <= time.time() * 1000, (t0, g)
assert logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/nope")["logGroups"] == []
assert [
    x["logGroupName"]
    for x in logs.describe_log_groups(logGroupNamePattern="GGED")["logGroups"]
] == [GROUP]
assert [
    x["logGroupName"]
    for x in logs.describe_log_groups(
        logGroupIdentifiers=[g["logGroupArn"], "/aws/lambda/none"]
    )["logGroups"]
] == [GROUP]
assert logs.describe_log_groups(logGroupClass="INFREQUENT_ACCESS")["logGroups"] == []
assert len(logs.describe_log_groups(logGroupClass="STANDARD")["logGroups"]) == 1
all_groups = [
    x["logGroupName"]
    for page in logs.get_paginator("describe_log_groups").paginate(PaginationConfig={"PageSize": 1})
    for x in page["logGroups"]
]
assert all_groups == [GROUP], all_groups

# --- DescribeLogStreams: both environments' streams, paged one at a time.
def stream_list(**kw):
    pages = logs.get_paginator("describe_log_streams").paginate(
        logGroupName=GROUP, PaginationConfig={"PageSize": 1}, **kw
    )
    return [s for page in pages for s in page["logStreams"]]


streams = wait_for("two log streams", lambda: (lambda s: s if len(s) == 2 else None)(stream_list()))
names = [s["logStreamName"] for s in streams]
assert names == sorted(names), names
for s in streams:
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", s["logStreamName"]), s
    assert s["firstEventTimestamp"] <= s["lastEventTimestamp"], s
    assert s["arn"].endswith(f"log-group:{GROUP}:log-stream:{s['logStreamName']}"), s
by_time = stream_list(orderBy="LastEventTime", descending=True)
assert [s["lastEventTimestamp"] for s in by_time] == sorted(
    (s["lastEventTimestamp"] for s in by_time), reverse=True
), by_time
assert sorted(s["logStreamName"] for s in by_time) == names
assert [s["logStreamName"] for s in stream_list(descending=True)] == names[::-1]
prefix = names[0][: names[0].index("]") + 1]
assert len(stream_list(logStreamNamePrefix=prefix)) == 2
assert stream_list(logStreamNamePrefix="1999/") == []

# The stream with the three greetings: the one whose events include "alpha".
main = None
for n in names:
    ev = logs.get_log_events(logGroupName=GROUP, logStreamName=n, startFromHead=True)["events"]
    if any("alpha" in e["message"] for e in ev):
        main = n
assert main, names

# --- GetLogEvents: from the head, paged forward two at a time, then nothing newer.
def get_all_forward(stream, limit):
    out, token = [], None
    while True:
        args = dict(logGroupName=GROUP, logStreamName=stream, limit=limit, startFromHead=True)
        if token:
            args["nextToken"] = token
        r = logs.get_log_events(**args)
        if not r["events"]:
            assert r["nextForwardToken"] == token, (r, token)
            return out, token
        out += r["events"]
        token = r["nextForwardToken"]


whole = logs.get_log_events(logGroupName=GROUP, logStreamName=main, startFromHead=True)["events"]
msgs = [e["message"] for e in whole]
assert msgs[0].startswith("START RequestId:"), msgs
assert sum(m.startswith("REPORT RequestId:") for m in msgs) >= 3, msgs
assert any("hello from python {'word': 'beta'}" in m for m in msgs), msgs
for e in whole:
    assert set(e) == {"timestamp", "message", "ingestionTime"}, e
paged, _ = get_all_forward(main, 2)
assert [e["message"] for e in paged] == msgs
# Polling forward: the same token comes back while nothing is newer, and a new
# invocation's lines arrive on it (in whichever environment's stream it ran).
ends = {n: get_all_forward(n, 1000)[1] for n in names}
for n, token in ends.items():
    again = logs.get_log_events(logGroupName=GROUP, logStreamName=n, nextToken=token)
    assert again["events"] == [] and again["nextForwardToken"] == token, again
invoke({"word": "delta"})


def newer():
    got = []
    for n, token in ends.items():
        r = logs.get_log_events(logGroupName=GROUP, logStreamName=n, nextToken=token)
        got += [e["message"] for e in r["events"]]
    # The invocation's lines may be stored over more than one write.
    return got if any("'delta'" in m for m in got) else None


wait_for("delta on a forward token", newer)
wait_reports(6)
# A read that finds nothing (a window before every event) hands back a forward
# token from which only lines stored afterwards are read.
empty_ends = {}
for n in names:
    r = logs.get_log_events(logGroupName=GROUP, logStreamName=n, endTime=1)
    assert r["events"] == [], r
    empty_ends[n] = r["nextForwardToken"]
invoke({"word": "epsilon"})


def after_empty():
    got = []
    for n, token in empty_ends.items():
        got += [e["message"] for e in logs.get_log_events(
            logGroupName=GROUP, logStreamName=n, nextToken=token)["events"]]
    return got if any("'epsilon'" in m for m in got) else None


got = wait_for("epsilon after an empty read", after_empty)
assert not any("'alpha'" in m or "'delta'" in m for m in got), got
wait_reports(7)
# Without startFromHead: the newest events; the backward token pages to older ones.
latest = logs.get_log_events(logGroupName=GROUP, logStreamName=main, limit=3)
assert len(latest["events"]) == 3
assert latest["events"][-1]["message"].startswith("REPORT"), latest
older = logs.get_log_events(
    logGroupName=GROUP, logStreamName=main, limit=3, nextToken=latest["nextBackwardToken"]
)
assert len(older["events"]) == 3
assert older["events"][-1]["timestamp"] <= latest["events"][0]["timestamp"]
# A time window.
window = logs.get_log_events(
    logGroupName=GROUP, logStreamName=main, startTime=whole[0]["timestamp"],
    endTime=whole[0]["timestamp"] + 1, startFromHead=True,
)["events"]
assert window and all(e["timestamp"] == whole[0]["timestamp"] for e in window), window
# The same through logGroupIdentifier as an ARN.
by_arn = logs.get_log_events(
    logGroupIdentifier=g["logGroupArn"], logStreamName=main, startFromHead=True
)["events"]
assert [e["message"] for e in by_arn][: len(msgs)] == msgs

# --- FilterLogEvents: patterns, pages, streams, times.
hello, _ = filtered(filterPattern='"hello from python"')
assert len(hello) == 5, [e["message"] for e in hello]
alpha, _ = filtered(filterPattern="alpha")
assert len(alpha) == 2, alpha
assert [e["message"] for e in filtered(filterPattern="alpha -gamma")[0]] == [
    m for m in (e["message"] for e in alpha) if "gamma" not in m
]
either, _ = filtered(filterPattern="?beta ?gamma")
assert len(either) == 2, either
assert filtered(filterPattern="nothing-says-this")[0] == []
everything, _ = filtered()
one_by_one, pages = filtered(limit=1)
assert pages >= len(everything), pages
assert [e["eventId"] for e in one_by_one] == [e["eventId"] for e in everything]
assert len({e["eventId"] for e in everything}) == len(everything)
assert {e["logStreamName"] for e in everything} == set(names)
ts = [e["timestamp"] for e in everything]
only_main, _ = filtered(logStreamNames=[main])
assert {e["logStreamName"] for e in only_main} == {main}
assert len(only_main) < len(everything)
assert filtered(startTime=int(time.time() * 1000) + 3_600_000)[0] == []
mid = ts[len(ts) // 2]
later, _ = filtered(startTime=mid)
assert later and all(e["timestamp"] >= mid for e in later)
earlier, _ = filtered(endTime=mid)
assert earlier and all(e["timestamp"] <= mid for e in earlier)
r = logs.filter_log_events(logGroupName=GROUP, filterPattern="alpha")
assert {s["logStreamName"] for s in r["searchedLogStreams"]} == {main}, r
paged = [
    e
    for page in logs.get_paginator("filter_log_events").paginate(
        logGroupName=GROUP, PaginationConfig={"PageSize": 2}
    )
    for e in page["events"]
]
assert [e["eventId"] for e in paged] == [e["eventId"] for e in everything]

# --- Following, as `aws logs tail --follow` (AWS CLI v2) does: FilterLogEvents with
# logGroupName, interleaved and a start time, through every nextToken; after the
# last page, again from the newest timestamp seen, remembering only the event ids
# at that timestamp (so the server must not hand back anything older).
shown, stop = [], threading.Event()


def follow():
    args = dict(logGroupName=GROUP, interleaved=True, startTime=int(time.time() * 1000) - 1000)
    newest, ids_at_newest = None, set()
    while not stop.is_set():
        r = logs.filter_log_events(**args)
        for e in r["events"]:
            if e["timestamp"] == newest and e["eventId"] in ids_at_newest:
                continue
            shown.append((e["eventId"], e["message"]))
            if newest is None or e["timestamp"] > newest:
                newest, ids_at_newest = e["timestamp"], set()
            if e["timestamp"] == newest:
                ids_at_newest.add(e["eventId"])
        if "nextToken" in r:
            args["nextToken"] = r["nextToken"]
        else:
            args.pop("nextToken", None)
            if newest is not None:
                args["startTime"] = newest
            stop.wait(0.3)


follower = threading.Thread(target=follow)
follower.start()
time.sleep(0.5)
invoke({"word": "followed"})
wait_for("the followed line", lambda: any("'followed'" in m for _, m in shown))
time.sleep(1)
stop.set()
follower.join()
assert sum("'followed'" in m for _, m in shown) == 1, shown
ids = [i for i, _ in shown]
assert len(ids) == len(set(ids)), f"an event was shown twice: {shown}"
assert any(m.startswith("REPORT RequestId:") for _, m in shown), shown

# --- Errors.
fails(lambda: logs.filter_log_events(logGroupName="/aws/lambda/none"),
      "ResourceNotFoundException", "The specified log group does not exist.")
fails(lambda: logs.describe_log_streams(logGroupName="/aws/lambda/none"),
      "ResourceNotFoundException", "The specified log group does not exist.")
fails(lambda: logs.get_log_events(logGroupName="/aws/lambda/none", logStreamName="x"),
      "ResourceNotFoundException", "The specified log group does not exist.")
fails(lambda: logs.get_log_events(logGroupName=GROUP, logStreamName="no-such-stream"),
      "ResourceNotFoundException", "The specified log stream does not exist.")
fails(lambda: logs.filter_log_events(logGroupName=GROUP, nextToken="garbage"),
      "InvalidParameterException", "nextToken is invalid")
fails(lambda: logs.get_log_events(logGroupName=GROUP, logStreamName=main, nextToken="f/x"),
      "InvalidParameterException", "nextToken is invalid")
fails(lambda: logs.describe_log_streams(logGroupName=GROUP, nextToken="garbage"),
      "InvalidParameterException", "nextToken is invalid")
fails(lambda: logs.filter_log_events(logGroupName=GROUP, filterPattern='{ $.level = "ERROR" }'),
      "InvalidParameterException", "JSON filter patterns")
fails(lambda: logs.filter_log_events(logGroupName=GROUP, filterPattern='"open'),
      "InvalidParameterException", "unterminated quoted phrase")
fails(lambda: logs.describe_log_streams(logGroupName=GROUP, orderBy="LastEventTime",
                                        logStreamNamePrefix="2"),
      "InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix")
fails(lambda: logs.filter_log_events(logGroupName=GROUP, logGroupIdentifier=GROUP),
      "InvalidParameterException", "mutually exclusive")
fails(lambda: logs.filter_log_events(logGroupIdentifier="arn:aws:s3:::bucket"),
      "InvalidParameterException", "logGroupIdentifier")
# What botocore would refuse before sending, sent anyway.
raw = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                   config=Config(retries={"max_attempts": 1}, parameter_validation=False))
fails(lambda: raw.filter_log_events(logGroupName=GROUP, limit=0),
      "InvalidParameterException", "Value '0' at 'limit'", "greater than or equal to 1")
fails(lambda: raw.get_log_events(logGroupName=GROUP, logStreamName=main, limit=10001),
      "InvalidParameterException", "less than or equal to 10000")
fails(lambda: raw.describe_log_groups(limit=51),
      "InvalidParameterException", "less than or equal to 50")
fails(lambda: raw.get_log_events(logGroupName=GROUP),
      "InvalidParameterException", "logStreamName")
fails(lambda: raw.filter_log_events(logGroupName="bad name!"),
      "InvalidParameterException", "logGroupName")
fails(lambda: raw.filter_log_events(logGroupName=GROUP, limit="ten"),
      "SerializationException", "limit")


def signed_post(target, body):
    creds = botocore.session.Session().get_credentials()
    req = AWSRequest(method="POST", url=endpoint + "/", data=body, headers={
        "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(creds, "logs", "us-east-1").add_auth(req)
    r = urllib.request.Request(endpoint + "/", data=body, headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


status, body = signed_post("Logs_20140328.FilterLogEvents", b'{"logGroupName": ')
assert status == 400 and body["__type"] == "SerializationException", (status, body)
assert "Could not parse request body into json" in body["message"], body
status, body = signed_post("Logs_20140328.FilterLogEvents", b'[1, 2]')
assert status == 400 and body["__type"] == "SerializationException", (status, body)
status, body = signed_post("Logs_20140328.PutLogEvents", b"{}")
assert status == 400 and body["__type"] == "UnknownOperationException", (status, body)

# Authentication failures in this API's shape: a wrong secret, and a signature
# scoped to another service.
creds = botocore.session.Session().get_credentials()
wrong = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1", config=cfg,
                     aws_access_key_id=creds.access_key, aws_secret_access_key="wrong")
try:
    wrong.describe_log_groups()
    raise SystemExit("a wrong secret was accepted")
except ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidSignatureException", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
req = AWSRequest(method="POST", url=endpoint + "/", data=b"{}", headers={
    "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
    "Content-Type": "application/x-amz-json-1.1"})
SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
try:
    urllib.request.urlopen(urllib.request.Request(
        endpoint + "/", data=b"{}", headers=dict(req.headers), method="POST"))
    raise SystemExit("a signature for another service was accepted")
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    assert e.code == 403 and body["__type"] == "InvalidSignatureException", (e.code, body)
    assert e.headers["content-type"] == "application/x-amz-json-1.1", e.headers

print("boto3 logs: all checks passed")
