#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target under OUT/<target>/, made at run time
from the repository's fixtures and examples (nothing binary is committed).

Usage: fuzz/seeds.py OUT    (run from anywhere; paths are relative to the repo)

A target added to fuzz/Cargo.toml gets its seeds from a function named like it
below (seeds_<target>), returning {file name: bytes}; a target without one starts
from an empty corpus, which libFuzzer accepts.
"""

import io
import json
import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def seeds_manifest():
    out = {}
    roots = [REPO / "crates/stratus-manifest/tests/fixtures", REPO / "examples",
             REPO / "crates/stratus-cli/tests/fixtures"]
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix in (".yml", ".yaml") and path.is_file():
                name = str(path.relative_to(REPO)).replace("/", "_")
                out[name] = path.read_bytes()
    return out


def _zip(entries):
    """entries: (name, data, unix mode or None, compression)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, mode, method in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


def seeds_unzip():
    D, S = zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED
    # Unix modes: file type bits | permissions (regular, executable, symlink, directory).
    reg, exe, lnk, dr = 0o100644, 0o100755, 0o120777, 0o040755
    out = {
        "plain.zip": _zip([("index.js", b"exports.handler = async () => 1;\n", reg, D),
                           ("lib/util.js", b"module.exports = {};\n", reg, D)]),
        "bootstrap.zip": _zip([("bootstrap", b"#!/bin/sh\nexit 0\n", exe, S)]),
        "dirs-and-links.zip": _zip([("lib/", b"", dr, S),
                                    ("lib/a.so.1", b"\x7fELF", reg, S),
                                    ("lib/a.so", b"a.so.1", lnk, S),
                                    ("up", b"lib/../lib/a.so.1", lnk, S)]),
        "escape-link.zip": _zip([("x", b"../../etc/passwd", lnk, S)]),
        "escape-name.zip": _zip([("../evil", b"x", reg, S)]),
        "absolute-name.zip": _zip([("/tmp/evil", b"x", reg, S)]),
        "through-link.zip": _zip([("d", b".", lnk, S), ("d/f", b"x", reg, S)]),
        "windows.zip": _zip([("a\\b.txt", b"x", None, D)]),
        "repetitive.zip": _zip([("big.txt", b"A" * 200_000, reg, D)]),
        "empty.zip": _zip([]),
    }
    # The examples as a deploy would upload them.
    for example in sorted((REPO / "examples").iterdir()):
        files = [p for p in sorted(example.rglob("*"))
                 if p.is_file() and "target" not in p.parts and p.stat().st_size < 64_000]
        if files:
            out[f"example-{example.name}.zip"] = _zip(
                [(str(p.relative_to(example)), p.read_bytes(),
                  exe if os.access(p, os.X_OK) else reg, D) for p in files[:40]])
    return out


def seeds_runtime_api():
    return {
        "next": b"GET /2018-06-01/runtime/invocation/next\n\n",
        "response": b"POST /2018-06-01/runtime/invocation/8f5e/response\n\n{\"ok\":true}",
        "error-node": b"POST /2018-06-01/runtime/invocation/8f5e/error\n\n"
                      b"{\"errorType\":\"TypeError\",\"errorMessage\":\"x\",\"trace\":[\"at a\",\"at b\"]}",
        "error-python": b"POST /2018-06-01/runtime/invocation/8f5e/error\nRuntime.Custom\n"
                        b"{\"errorType\":\"E\",\"errorMessage\":\"m\",\"stackTrace\":[[\"f.py\",1,\"g\",\"h\"]],\"requestId\":\"r\"}",
        "init-error": b"POST /2018-06-01/runtime/init/error\nRuntime.ImportModuleError\nnot json",
    }


def seeds_gateway_request():
    return {
        "rest-get": b"GET /dev/users/42?a=1&a=2&b=%20x\nhost: api.local\norigin: https://x.example\ncookie: a=1; b=2\n\n",
        "rest-proxy": b"DELETE /dev/admin/a/b/c\nx-multi: 1\nx-multi: 2\n\n",
        "http-api-post": b"POST /orders/7/items?x=y\ncontent-type: application/json\n\n{\"n\":1}",
        "binary": b"PUT /anything\ncontent-type: application/octet-stream\n\n\x00\x01\xff",
        "preflight": b"OPTIONS /dev/users/42\norigin: https://x.example\naccess-control-request-method: GET\n\n",
        "url": b"POST /lambda-url/svc-dev-hook/x/y\ncontent-type: text/plain\n\nhello",
    }


def seeds_gateway_response():
    return {
        "v1": json.dumps({"statusCode": 200, "headers": {"a": "b"},
                          "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
                          "body": "hi", "isBase64Encoded": False}).encode(),
        "v1-b64": json.dumps({"statusCode": 201, "body": "aGk=", "isBase64Encoded": True}).encode(),
        "v2": json.dumps({"statusCode": 302, "headers": {"location": "/x"},
                          "cookies": ["a=1"], "body": ""}).encode(),
        "v2-simple": json.dumps({"hello": "world"}).encode(),
        "string": b"\"just a string\"",
        "number": b"42",
        "bad-status": json.dumps({"statusCode": 99999}).encode(),
    }


def seeds_schedule():
    exprs = ["rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(7 days)",
             "cron(0 12 * * ? *)", "cron(15 10 ? * 6L 2022-2030)", "cron(0/15 * ? * MON-FRI *)",
             "cron(0 8 1W * ? *)", "cron(0 0 L * ? *)", "cron(0 9 ? * 2#1 *)",
             "cron(0 0 29 2 ? *)", "cron(5,35 14 * JAN,JUL ? 2199)"]
    return {f"e{i}": e.encode() for i, e in enumerate(exprs)}


def seeds_sqs():
    def seq(*reqs):
        return "\n".join(f"{a}\t{json.dumps(b)}" for a, b in reqs).encode()
    url = "http://127.0.0.1:9000/000000000000/jobs"
    dlq = "http://127.0.0.1:9000/000000000000/dlq"
    return {
        "send-receive-delete": seq(
            ("CreateQueue", {"QueueName": "jobs", "Attributes": {"VisibilityTimeout": "5"}}),
            ("SendMessage", {"QueueUrl": url, "MessageBody": "hi", "DelaySeconds": 0,
                             "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}}}),
            ("ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1,
                                "AttributeNames": ["All"], "MessageAttributeNames": ["All"]}),
            ("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": "x"})),
        "redrive": seq(
            ("CreateQueue", {"QueueName": "dlq"}),
            ("CreateQueue", {"QueueName": "jobs", "Attributes": {"RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq", "maxReceiveCount": 1})}}),
            ("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": "a", "MessageBody": "1"},
                                                               {"Id": "b", "MessageBody": "2", "DelaySeconds": 3}]}),
            ("ReceiveMessage", {"QueueUrl": url, "VisibilityTimeout": 0}),
            ("ReceiveMessage", {"QueueUrl": url}),
            ("ListDeadLetterSourceQueues", {"QueueUrl": dlq, "MaxResults": 1})),
        "attributes": seq(
            ("CreateQueue", {"QueueName": "q.fifo", "Attributes": {"FifoQueue": "true",
                                                                  "ContentBasedDeduplication": "true"}}),
            ("SetQueueAttributes", {"QueueUrl": "http://127.0.0.1:9000/000000000000/q.fifo",
                                    "Attributes": {"MessageRetentionPeriod": "60", "DelaySeconds": "900"}}),
            ("GetQueueAttributes", {"QueueUrl": "http://127.0.0.1:9000/000000000000/q.fifo",
                                    "AttributeNames": ["All"]}),
            ("ListQueues", {"QueueNamePrefix": "q", "MaxResults": 1000}),
            ("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": "x", "VisibilityTimeout": 43200}),
            ("TagQueue", {"QueueUrl": url, "Tags": {"a": "b"}}),
            ("PurgeQueue", {"QueueUrl": url}),
            ("DeleteQueue", {"QueueUrl": url})),
    }


def seeds_sigv4():
    auth = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261203/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    presign = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261203"
               "%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20261203T101500Z&X-Amz-Expires=600"
               "&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "ab" * 32)
    return {
        "header": f"{auth}\n20261203T101500Z\n\n/2015-03-31/functions".encode(),
        "presigned": f"\n\n{presign}\n/stratus/v1/blobs/x".encode(),
        "session": f"{auth}\n20261203T101500Z\nX-Amz-Security-Token=abc\n/".encode(),
    }


def seeds_policy():
    docs = [
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        {"Version": "2012-10-17", "Statement": {"Sid": "x", "Effect": "Deny",
                                                "NotAction": ["lambda:Get*", "sqs:?end*"],
                                                "NotResource": "arn:aws:lambda:*:*:function:f*"}},
        {"Statement": [{"Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                        "Resource": ["arn:aws:lambda:us-east-1:000000000000:function:f",
                                     "arn:aws:lambda:us-east-1:000000000000:function:f:*"]}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                                 "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]},
    ]
    return {f"p{i}": json.dumps(d).encode() for i, d in enumerate(docs)}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fuzz/seeds.py OUT")
    out = Path(sys.argv[1])
    for name, fn in sorted(globals().items()):
        if not name.startswith("seeds_"):
            continue
        target = out / name[len("seeds_"):]
        target.mkdir(parents=True, exist_ok=True)
        for file, data in fn().items():
            (target / file).write_bytes(data)


if __name__ == "__main__":
    main()
