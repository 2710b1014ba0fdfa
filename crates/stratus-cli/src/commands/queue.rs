//! `stratus queue list|send|receive|purge`: the built-in queues, over the same SQS
//! JSON protocol the AWS SDKs use.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::unreachable;
use crate::client::Api;
use crate::Global;

/// `stratus queue` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct QueueArgs {
    #[command(subcommand)]
    what: QueueCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum QueueCommand {
    /// List queues (optionally by name prefix).
    List {
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Send a message.
    Send {
        /// Queue name.
        queue: String,
        /// Message body.
        body: String,
        /// Delay in seconds.
        #[arg(long)]
        delay: Option<u32>,
    },
    /// Receive (and by default delete) messages.
    Receive {
        /// Queue name.
        queue: String,
        /// At most this many (1-10).
        #[arg(long, default_value_t = 10)]
        max: u32,
        /// Long-poll for up to this many seconds (0-20).
        #[arg(long, default_value_t = 0)]
        wait: u32,
        /// Leave the messages in the queue (they reappear after the visibility timeout).
        #[arg(long)]
        keep: bool,
    },
    /// Delete every message of a queue.
    Purge {
        /// Queue name.
        queue: String,
    },
}

async fn sqs(api: &Api, g: &Global, action: &str, body: Value) -> anyhow::Result<Value> {
    let target = format!("AmazonSQS.{action}");
    let r = api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            body.to_string(),
        )
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if r.status != 200 {
        bail!(
            "{action} failed: {}",
            v["message"]
                .as_str()
                .unwrap_or(&String::from_utf8_lossy(&r.body))
        );
    }
    Ok(v)
}

async fn url(api: &Api, g: &Global, queue: &str) -> anyhow::Result<String> {
    let v = sqs(api, g, "GetQueueUrl", json!({ "QueueName": queue })).await?;
    v["QueueUrl"]
        .as_str()
        .map(str::to_string)
        .context("GetQueueUrl returned no QueueUrl")
}

pub(crate) async fn run(g: &Global, args: QueueArgs) -> anyhow::Result<()> {
    let api = Api::new(&g.endpoint);
    match args.what {
        QueueCommand::List { prefix } => {
            let mut body = json!({});
            if let Some(p) = prefix {
                body["QueueNamePrefix"] = p.into();
            }
            let v = sqs(&api, g, "ListQueues", body).await?;
            for u in v["QueueUrls"].as_array().into_iter().flatten() {
                println!("{}", u.as_str().unwrap_or(""));
            }
        }
        QueueCommand::Send { queue, body, delay } => {
            let u = url(&api, g, &queue).await?;
            let mut req = json!({ "QueueUrl": u, "MessageBody": body });
            if let Some(d) = delay {
                req["DelaySeconds"] = d.into();
            }
            let v = sqs(&api, g, "SendMessage", req).await?;
            println!("{}", v["MessageId"].as_str().unwrap_or(""));
        }
        QueueCommand::Receive {
            queue,
            max,
            wait,
            keep,
        } => {
            let u = url(&api, g, &queue).await?;
            let req = json!({ "QueueUrl": u, "MaxNumberOfMessages": max, "WaitTimeSeconds": wait, "MessageSystemAttributeNames": ["All"] });
            let v = sqs(&api, g, "ReceiveMessage", req).await?;
            for m in v["Messages"].as_array().into_iter().flatten() {
                println!(
                    "{}",
                    serde_json::to_string(
                        &json!({ "MessageId": m["MessageId"], "Body": m["Body"], "Attributes": m["Attributes"] })
                    )?
                );
                if !keep {
                    sqs(
                        &api,
                        g,
                        "DeleteMessage",
                        json!({ "QueueUrl": u, "ReceiptHandle": m["ReceiptHandle"] }),
                    )
                    .await?;
                }
            }
        }
        QueueCommand::Purge { queue } => {
            let u = url(&api, g, &queue).await?;
            sqs(&api, g, "PurgeQueue", json!({ "QueueUrl": u })).await?;
            println!("Purged {queue}");
        }
    }
    Ok(())
}
