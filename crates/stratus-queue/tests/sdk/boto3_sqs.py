"""Drives a Stratus queue endpoint with boto3 (SQS JSON protocol). argv[1]: endpoint URL,
argv[2]: account id. Prints 'boto3: all checks passed' when every check holds."""

import hashlib
import struct
import sys
import threading
import time

import boto3

endpoint, account = sys.argv[1], sys.argv[2]
c = boto3.client(
    "sqs",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="x",
    aws_secret_access_key="x",
)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect(exc, fn, **kw):
    try:
        fn(**kw)
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__} from {fn.__name__}({kw})")


def md5_of_attributes(attrs):
    """SQS's algorithm, written independently of the server's."""
    out = b""
    for name in sorted(attrs):
        a = attrs[name]
        for part in (name.encode(), a["DataType"].encode()):
            out += struct.pack(">I", len(part)) + part
        if "BinaryValue" in a:
            out += b"\x02" + struct.pack(">I", len(a["BinaryValue"])) + a["BinaryValue"]
        else:
            v = a["StringValue"].encode()
            out += b"\x01" + struct.pack(">I", len(v)) + v
    return hashlib.md5(out).hexdigest()


# Queues: create (idempotent), conflict, URL, attributes.
url = c.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
check(url == f"{endpoint}/{account}/orders", url)
check(c.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "5"})["QueueUrl"] == url, "idempotent create")
e = expect(c.exceptions.QueueNameExists, c.create_queue, QueueName="orders", Attributes={"VisibilityTimeout": "6"})
check(e.response["Error"]["Code"] == "QueueAlreadyExists", e.response)
check(c.get_queue_url(QueueName="orders")["QueueUrl"] == url, "get_queue_url")
e = expect(c.exceptions.ClientError, c.create_queue, QueueName="orders", Attributes={"VisibilityTimeout": "99999"})
check(e.response["Error"]["Code"] == "InvalidAttributeValue", e.response)

# Send with every attribute type; MD5s match what the client computes.
attrs = {
    "kind": {"DataType": "String", "StringValue": "greeting"},
    "n": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
}
sent = c.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes=attrs)
check(sent["MD5OfMessageBody"] == hashlib.md5(b"hello").hexdigest(), sent)
check(sent["MD5OfMessageAttributes"] == md5_of_attributes(attrs), sent)
check(len(sent["MessageId"]) == 36, sent)
check(len(sent["ResponseMetadata"]["RequestId"]) == 36, sent["ResponseMetadata"])

# A batch with a failing entry.
batch = c.send_message_batch(
    QueueUrl=url,
    Entries=[
        {"Id": "a", "MessageBody": "b1"},
        {"Id": "b", "MessageBody": "b2", "DelaySeconds": 0},
        {"Id": "c", "MessageBody": "too late", "DelaySeconds": 901},
    ],
)
check(sorted(s["Id"] for s in batch["Successful"]) == ["a", "b"], batch)
check([f["Id"] for f in batch["Failed"]] == ["c"], batch)
check(batch["Failed"][0]["Code"] == "InvalidParameterValue" and batch["Failed"][0]["SenderFault"], batch)
expect(c.exceptions.BatchEntryIdsNotDistinct, c.send_message_batch, QueueUrl=url,
       Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}])
expect(c.exceptions.BatchRequestTooLong, c.send_message_batch, QueueUrl=url,
       Entries=[{"Id": f"big{i}", "MessageBody": "x" * 600_000} for i in range(2)])
expect(c.exceptions.TooManyEntriesInBatchRequest, c.send_message_batch, QueueUrl=url,
       Entries=[{"Id": f"e{i}", "MessageBody": "m"} for i in range(11)])

# Receive everything, with attributes.
got = c.receive_message(
    QueueUrl=url,
    MaxNumberOfMessages=10,
    WaitTimeSeconds=1,
    MessageAttributeNames=["All"],
    MessageSystemAttributeNames=["All"],
)["Messages"]
check(sorted(m["Body"] for m in got) == ["b1", "b2", "hello"], got)
hello = next(m for m in got if m["Body"] == "hello")
check(hello["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\xff", hello)
check(hello["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "42"}, hello)
check(hello["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"], hello)
check(hello["MD5OfBody"] == sent["MD5OfMessageBody"], hello)
check(hello["Attributes"]["ApproximateReceiveCount"] == "1", hello)
check(int(hello["Attributes"]["SentTimestamp"]) > 1_600_000_000_000, hello)
# Only the attributes asked for, and their MD5.
c.change_message_visibility(QueueUrl=url, ReceiptHandle=hello["ReceiptHandle"], VisibilityTimeout=0)
again = c.receive_message(QueueUrl=url, MessageAttributeNames=["kind"], AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
check(again["Body"] == "hello", again)
check(list(again["MessageAttributes"]) == ["kind"], again)
check(again["MD5OfMessageAttributes"] == md5_of_attributes({"kind": attrs["kind"]}), again)
check(again["Attributes"] == {"ApproximateReceiveCount": "2"}, again)
check(again["ReceiptHandle"] != hello["ReceiptHandle"], "receipt handles change per receive")

q = c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
check(q["ApproximateNumberOfMessagesNotVisible"] == "3" and q["ApproximateNumberOfMessages"] == "0", q)
check(q["QueueArn"] == f"arn:aws:sqs:us-east-1:{account}:orders" and q["VisibilityTimeout"] == "5", q)
expect(c.exceptions.InvalidAttributeName, c.get_queue_attributes, QueueUrl=url, AttributeNames=["Bogus"])

# Delete: single and batch (with a bad handle).
c.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
others = [m for m in got if m["Body"] != "hello"]
deleted = c.delete_message_batch(
    QueueUrl=url,
    Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(others)]
    + [{"Id": "bad", "ReceiptHandle": "not-a-handle"}],
)
check(len(deleted["Successful"]) == 2, deleted)
check(deleted["Failed"][0]["Id"] == "bad" and deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid", deleted)
expect(c.exceptions.ReceiptHandleIsInvalid, c.delete_message, QueueUrl=url, ReceiptHandle="nope")
q = c.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
check(q == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, q)

# Long poll: a send from another thread ends a 10 s wait early.
def later():
    time.sleep(0.3)
    c.send_message(QueueUrl=url, MessageBody="late")

t = threading.Thread(target=later)
start = time.monotonic()
t.start()
got = c.receive_message(QueueUrl=url, WaitTimeSeconds=10).get("Messages", [])
elapsed = time.monotonic() - start
t.join()
check([m["Body"] for m in got] == ["late"], got)
check(elapsed < 5, f"long poll took {elapsed:.2f}s")
# Visible again at once; then the handle is no longer in flight.
late = got[0]["ReceiptHandle"]
c.change_message_visibility(QueueUrl=url, ReceiptHandle=late, VisibilityTimeout=0)
expect(c.exceptions.MessageNotInflight, c.change_message_visibility, QueueUrl=url,
       ReceiptHandle=late, VisibilityTimeout=10)
# A deleted message's handle: SQS's InvalidParameterValue.
e = expect(c.exceptions.ClientError, c.change_message_visibility, QueueUrl=url,
           ReceiptHandle=hello["ReceiptHandle"], VisibilityTimeout=0)
check(e.response["Error"]["Code"] == "InvalidParameterValue", e.response)

# Set attributes.
c.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "2", "MessageRetentionPeriod": "120"})
q = c.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds", "MessageRetentionPeriod"])["Attributes"]
check(q == {"DelaySeconds": "2", "MessageRetentionPeriod": "120"}, q)

# A delayed message counts as delayed until its delay passes.
delayed_q = c.create_queue(QueueName="delays")["QueueUrl"]
c.send_message(QueueUrl=delayed_q, MessageBody="d", DelaySeconds=900)
q = c.get_queue_attributes(QueueUrl=delayed_q, AttributeNames=["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"])["Attributes"]
check(q == {"ApproximateNumberOfMessagesDelayed": "1", "ApproximateNumberOfMessages": "0"}, q)
check("Messages" not in c.receive_message(QueueUrl=delayed_q), "a delayed message is not received")

# Redrive: a message received once too often lands in the dead-letter queue.
dlq = c.create_queue(QueueName="orders-dlq")["QueueUrl"]
dlq_arn = c.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
src = c.create_queue(
    QueueName="orders-src",
    Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"1"}}'},
)["QueueUrl"]
c.send_message(QueueUrl=src, MessageBody="poison")
first = c.receive_message(QueueUrl=src, VisibilityTimeout=0)["Messages"][0]
check(first["Body"] == "poison", first)
check("Messages" not in c.receive_message(QueueUrl=src), "moved, not received")
dead = c.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MessageSystemAttributeNames=["DeadLetterQueueSourceArn"])["Messages"][0]
check(dead["MessageId"] == first["MessageId"], dead)
check(dead["Attributes"]["DeadLetterQueueSourceArn"].endswith(":orders-src"), dead)
policy = c.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
check(policy == f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":1}}', policy)
check(c.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src], "dead-letter sources")

# Purge.
c.send_message(QueueUrl=src, MessageBody="p1")
c.purge_queue(QueueUrl=src)
q = c.get_queue_attributes(QueueUrl=src, AttributeNames=["All"])["Attributes"]
check(q["ApproximateNumberOfMessages"] == "0" and q["ApproximateNumberOfMessagesDelayed"] == "0", q)

# FIFO.
fifo = c.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
s1 = c.send_message(QueueUrl=fifo, MessageBody="one", MessageGroupId="g")
s2 = c.send_message(QueueUrl=fifo, MessageBody="one", MessageGroupId="g")
check(s1["MessageId"] == s2["MessageId"] and "SequenceNumber" in s1, (s1, s2))
c.send_message(QueueUrl=fifo, MessageBody="two", MessageGroupId="g")
got = c.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
check([m["Body"] for m in got] == ["one", "two"], got)
check(got[0]["Attributes"]["MessageGroupId"] == "g", got)
expect(c.exceptions.QueueDoesNotExist, c.get_queue_url, QueueName="jobs")

# Tags.
c.tag_queue(QueueUrl=url, Tags={"team": "payments"})
check(c.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "payments"}, "tags")

# List, with a prefix and pages.
urls = c.list_queues(QueueNamePrefix="orders")["QueueUrls"]
check(urls == [url, dlq, src], urls)
page = c.list_queues(QueueNamePrefix="orders", MaxResults=2)
check(page["QueueUrls"] == [url, dlq] and "NextToken" in page, page)
page = c.list_queues(QueueNamePrefix="orders", MaxResults=2, NextToken=page["NextToken"])
check(page["QueueUrls"] == [src] and "NextToken" not in page, page)

# Delete a queue; it is gone for every action, with the modeled exception.
c.delete_queue(QueueUrl=src)
e = expect(c.exceptions.QueueDoesNotExist, c.get_queue_url, QueueName="orders-src")
check(e.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue", e.response)
check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response)
expect(c.exceptions.QueueDoesNotExist, c.send_message, QueueUrl=src, MessageBody="x")
expect(c.exceptions.QueueDoesNotExist, c.receive_message, QueueUrl=src)
check(src not in c.list_queues().get("QueueUrls", []), "deleted queue listed")

# Resource API on top of the client.
sqs = boto3.resource("sqs", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="x")
queue = sqs.get_queue_by_name(QueueName="orders-dlq")
queue.send_message(MessageBody="via resource")
msgs = queue.receive_messages(WaitTimeSeconds=1, MaxNumberOfMessages=10)
check("via resource" in [m.body for m in msgs], [m.body for m in msgs])
for m in msgs:
    m.delete()

print("boto3: all checks passed")
