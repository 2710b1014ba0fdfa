"""AWS/SQS metrics through the real boto3 `sqs` and `cloudwatch` clients: message
counts (NumberOfMessagesSent/Received/Deleted) and sampled queue depth
(ApproximateNumberOfMessagesVisible, sampled every 10 s).

Usage: boto3_sqs_metrics.py ENDPOINT FIXTURES_DIR. Exits non-zero on the first mismatch.
"""
import datetime
import sys
import time

import boto3
from botocore.config import Config

endpoint = sys.argv[1]
cfg = Config(retries={"max_attempts": 1})
sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
cw = boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1", config=cfg)

url = sqs.create_queue(QueueName="depth")["QueueUrl"]
for i in range(5):
    sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
assert len(got) == 2, got
sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])

now = datetime.datetime.now(datetime.timezone.utc)
Q = [{"Name": "QueueName", "Value": "depth"}]


def total(metric, stat="Sum"):
    r = cw.get_metric_statistics(
        Namespace="AWS/SQS", MetricName=metric, Dimensions=Q,
        StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
        Period=720, Statistics=[stat])
    return sum(d[stat] for d in r["Datapoints"])


assert total("NumberOfMessagesSent") == 5.0, total("NumberOfMessagesSent")
assert total("NumberOfMessagesReceived") == 2.0
assert total("NumberOfMessagesDeleted") == 1.0
# Depth is sampled every 10 seconds: 3 visible, 1 in flight.
deadline = time.time() + 25
while time.time() < deadline:
    if total("ApproximateNumberOfMessagesVisible", "Minimum") == 3.0 and total("ApproximateNumberOfMessagesNotVisible", "Maximum") == 1.0:
        break
    time.sleep(1)
else:
    raise AssertionError(("depth never sampled", total("ApproximateNumberOfMessagesVisible", "Maximum")))
names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/SQS")["Metrics"]}
assert {"NumberOfMessagesSent", "ApproximateNumberOfMessagesDelayed"} <= names, names
print("boto3 sqs metrics: all checks passed")
