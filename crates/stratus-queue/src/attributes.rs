//! Queue attributes: the settable configuration of a queue (`VisibilityTimeout`,
//! `RedrivePolicy`, ...) with SQS's names, ranges and defaults, parsed from and
//! rendered to SQS's string-valued attribute maps. Counts and timestamps that
//! `GetQueueAttributes` also returns are computed by [`crate::queue`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::QueueError;

/// Default `VisibilityTimeout`, seconds.
pub const DEFAULT_VISIBILITY_TIMEOUT: u32 = 30;
/// Largest visibility timeout (12 hours), seconds.
pub const MAX_VISIBILITY_TIMEOUT: u32 = 43_200;
/// Largest `DelaySeconds` (15 minutes).
pub const MAX_DELAY_SECONDS: u32 = 900;
/// Default `MessageRetentionPeriod` (4 days), seconds.
pub const DEFAULT_RETENTION: u32 = 345_600;
/// Smallest `MessageRetentionPeriod` (1 minute), seconds.
pub const MIN_RETENTION: u32 = 60;
/// Largest `MessageRetentionPeriod` (14 days), seconds.
pub const MAX_RETENTION: u32 = 1_209_600;
/// Largest message (body plus message attributes): 1 MiB since SQS raised it in 2025.
pub const MAX_MESSAGE_SIZE: u32 = 1_048_576;
/// Smallest settable `MaximumMessageSize`.
pub const MIN_MESSAGE_SIZE: u32 = 1_024;
/// Longest long poll, seconds.
pub const MAX_WAIT_SECONDS: u32 = 20;
/// Largest `maxReceiveCount` of a redrive policy.
pub const MAX_RECEIVE_COUNT: u32 = 1_000;

/// Attributes that `GetQueueAttributes` computes and nobody can set.
pub(crate) const READ_ONLY: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

/// Attributes kept verbatim: accepted and returned, with no effect on delivery
/// (access policies and encryption do not apply to a self-hosted queue; FIFO
/// throughput modes have nothing to tune here).
const VERBATIM: &[&str] = &[
    "Policy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Settable attribute names, in the order `GetQueueAttributes` lists them.
const SETTABLE: &[&str] = &[
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
];

/// `RedrivePolicy`: where messages go after too many receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedrivePolicy {
    /// ARN of the dead-letter queue.
    pub dead_letter_target_arn: String,
    /// A message received this many times moves to the dead-letter queue on its
    /// next receive attempt.
    pub max_receive_count: u32,
}

impl RedrivePolicy {
    /// SQS's rendering: `{"deadLetterTargetArn":"…","maxReceiveCount":5}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "deadLetterTargetArn": self.dead_letter_target_arn,
            "maxReceiveCount": self.max_receive_count,
        })
        .to_string()
    }

    /// Parses SQS's JSON form; `maxReceiveCount` may be a number or a numeric string.
    fn parse(text: &str) -> Result<Self, QueueError> {
        let bad = |reason: &str| QueueError::param("RedrivePolicy", text, reason);
        let value: Value = serde_json::from_str(text)
            .map_err(|_| bad("Redrive policy is not a valid JSON map."))?;
        let map = value
            .as_object()
            .ok_or_else(|| bad("Redrive policy is not a valid JSON map."))?;
        if let Some(k) = map
            .keys()
            .find(|k| *k != "deadLetterTargetArn" && *k != "maxReceiveCount")
        {
            return Err(bad(&format!("Unknown redrive policy attribute: {k}.")));
        }
        let arn = map
            .get("deadLetterTargetArn")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Redrive policy does not contain deadLetterTargetArn."))?;
        let count = match map.get("maxReceiveCount") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => return Err(bad("Redrive policy does not contain maxReceiveCount.")),
        };
        let count = count
            .filter(|c| (1..=MAX_RECEIVE_COUNT as u64).contains(c))
            .ok_or_else(|| {
                bad("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")
            })?;
        Ok(Self {
            dead_letter_target_arn: arn.to_string(),
            max_receive_count: count as u32,
        })
    }
}

/// The settable configuration of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// Seconds a received message stays hidden (0–43,200; default 30).
    pub visibility_timeout: u32,
    /// Seconds every new message waits before it can be received (0–900).
    pub delay_seconds: u32,
    /// Seconds a message is kept (60–1,209,600; default 4 days).
    pub retention_seconds: u32,
    /// Largest message, bytes (1,024–1,048,576).
    pub max_message_size: u32,
    /// Default long-poll wait of `ReceiveMessage` (0–20 s).
    pub receive_wait_seconds: u32,
    /// Dead-letter queue, if any.
    pub redrive: Option<RedrivePolicy>,
    /// A FIFO queue (name ends in `.fifo`): per-group ordering and deduplication.
    pub fifo: bool,
    /// FIFO only: deduplicate by a SHA-256 of the body when no id is given.
    pub content_based_deduplication: bool,
    /// Attributes kept verbatim (see `VERBATIM`).
    pub other: BTreeMap<String, String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            delay_seconds: 0,
            retention_seconds: DEFAULT_RETENTION,
            max_message_size: MAX_MESSAGE_SIZE,
            receive_wait_seconds: 0,
            redrive: None,
            fifo: false,
            content_based_deduplication: false,
            other: BTreeMap::new(),
        }
    }
}

fn integer(name: &str, value: &str, min: u32, max: u32) -> Result<u32, QueueError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            QueueError::attr_value(
                name,
                format!("'{value}' is not an integer from {min} to {max}."),
            )
        })
}

fn boolean(name: &str, value: &str) -> Result<bool, QueueError> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(QueueError::attr_value(
            name,
            format!("'{value}' is not true or false."),
        )),
    }
}

impl QueueConfig {
    /// A configuration for a new queue: the defaults with `attributes` applied.
    pub fn for_create(attributes: &HashMap<String, String>) -> Result<Self, QueueError> {
        let mut config = Self::default();
        config.apply(attributes, true)?;
        Ok(config)
    }

    /// Applies `CreateQueue`/`SetQueueAttributes` attributes. `FifoQueue` can only be
    /// given at creation. Nothing changes unless every attribute is valid.
    pub fn apply(
        &mut self,
        attributes: &HashMap<String, String>,
        creating: bool,
    ) -> Result<(), QueueError> {
        let mut next = self.clone();
        // FifoQueue first: other attributes are valid or not depending on it.
        if let Some(v) = attributes.get("FifoQueue") {
            if !creating {
                return Err(QueueError::attr_value(
                    "FifoQueue",
                    "a queue's type can only be chosen when it is created.",
                ));
            }
            next.fifo = boolean("FifoQueue", v)?;
        }
        for (name, value) in attributes {
            match name.as_str() {
                "FifoQueue" => {}
                "VisibilityTimeout" => {
                    next.visibility_timeout = integer(name, value, 0, MAX_VISIBILITY_TIMEOUT)?
                }
                "DelaySeconds" => next.delay_seconds = integer(name, value, 0, MAX_DELAY_SECONDS)?,
                "MessageRetentionPeriod" => {
                    next.retention_seconds = integer(name, value, MIN_RETENTION, MAX_RETENTION)?
                }
                "MaximumMessageSize" => {
                    next.max_message_size =
                        integer(name, value, MIN_MESSAGE_SIZE, MAX_MESSAGE_SIZE)?
                }
                "ReceiveMessageWaitTimeSeconds" => {
                    next.receive_wait_seconds = integer(name, value, 0, MAX_WAIT_SECONDS)?
                }
                "RedrivePolicy" => {
                    // An empty policy removes the dead-letter queue, as in SQS.
                    next.redrive = if value.trim().is_empty() {
                        None
                    } else {
                        Some(RedrivePolicy::parse(value)?)
                    };
                }
                "ContentBasedDeduplication" => {
                    let on = boolean(name, value)?;
                    if on && !next.fifo {
                        return Err(QueueError::attr_value(
                            name,
                            "ContentBasedDeduplication is only available for FIFO queues.",
                        ));
                    }
                    next.content_based_deduplication = on;
                }
                "DeduplicationScope" | "FifoThroughputLimit" if !next.fifo => {
                    return Err(QueueError::attr_value(
                        name,
                        format!("{name} is only available for FIFO queues."),
                    ));
                }
                other if VERBATIM.contains(&other) => {
                    if value.is_empty() {
                        next.other.remove(other);
                    } else {
                        next.other.insert(other.to_string(), value.clone());
                    }
                }
                other => {
                    return Err(QueueError::InvalidAttributeName {
                        name: other.to_string(),
                    })
                }
            }
        }
        *self = next;
        Ok(())
    }

    /// The value of a configuration attribute as SQS renders it, or `None` when the
    /// queue does not have it (no redrive policy, FIFO-only attributes of a standard
    /// queue) or the name is not a configuration attribute.
    pub fn get(&self, name: &str) -> Option<String> {
        match name {
            "VisibilityTimeout" => Some(self.visibility_timeout.to_string()),
            "DelaySeconds" => Some(self.delay_seconds.to_string()),
            "MessageRetentionPeriod" => Some(self.retention_seconds.to_string()),
            "MaximumMessageSize" => Some(self.max_message_size.to_string()),
            "ReceiveMessageWaitTimeSeconds" => Some(self.receive_wait_seconds.to_string()),
            "RedrivePolicy" => self.redrive.as_ref().map(RedrivePolicy::to_json),
            "FifoQueue" => self.fifo.then(|| "true".to_string()),
            "ContentBasedDeduplication" => self
                .fifo
                .then(|| self.content_based_deduplication.to_string()),
            "SqsManagedSseEnabled" => Some(
                self.other
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "false".to_string()),
            ),
            "DeduplicationScope" if self.fifo => Some(
                self.other
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "queue".to_string()),
            ),
            "FifoThroughputLimit" if self.fifo => Some(
                self.other
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "perQueue".to_string()),
            ),
            other => self.other.get(other).cloned(),
        }
    }

    /// Every configuration attribute this queue has, for `All`.
    pub fn all(&self) -> BTreeMap<String, String> {
        SETTABLE
            .iter()
            .chain(VERBATIM)
            .filter_map(|n| self.get(n).map(|v| (n.to_string(), v)))
            .collect()
    }
}

/// Whether `name` is an attribute `GetQueueAttributes` knows.
pub(crate) fn is_known(name: &str) -> bool {
    name == "All"
        || READ_ONLY.contains(&name)
        || SETTABLE.contains(&name)
        || VERBATIM.contains(&name)
}

/// Checks a queue name: 1–80 characters of `A-Za-z0-9_-`, and for a FIFO queue the
/// `.fifo` suffix (counted in the 80).
pub(crate) fn validate_queue_name(name: &str, fifo: bool) -> Result<(), QueueError> {
    let stem = if fifo {
        name.strip_suffix(".fifo").ok_or_else(|| {
            QueueError::param(
                "QueueName",
                name,
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
            )
        })?
    } else {
        name
    };
    let ok = !stem.is_empty()
        && name.len() <= 80
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else if !fifo && name.ends_with(".fifo") {
        Err(QueueError::param(
            "QueueName",
            name,
            "A queue name ending in .fifo needs the attribute FifoQueue=true.",
        ))
    } else {
        Err(QueueError::param(
            "QueueName",
            name,
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_sqs() {
        let c = QueueConfig::default();
        assert_eq!(c.get("VisibilityTimeout").as_deref(), Some("30"));
        assert_eq!(c.get("MessageRetentionPeriod").as_deref(), Some("345600"));
        assert_eq!(c.get("MaximumMessageSize").as_deref(), Some("1048576"));
        assert_eq!(c.get("DelaySeconds").as_deref(), Some("0"));
        assert_eq!(c.get("RedrivePolicy"), None);
        assert_eq!(c.get("FifoQueue"), None);
    }

    #[test]
    fn ranges_are_enforced_and_nothing_changes_on_error() {
        let mut c = QueueConfig::default();
        let e = c
            .apply(
                &attrs(&[("DelaySeconds", "5"), ("VisibilityTimeout", "43201")]),
                false,
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("VisibilityTimeout") && e.to_string().contains("43200"),
            "{e}"
        );
        assert_eq!(c.delay_seconds, 0, "a failed apply must not half-apply");
        for (k, v) in [
            ("MessageRetentionPeriod", "59"),
            ("DelaySeconds", "901"),
            ("ReceiveMessageWaitTimeSeconds", "21"),
            ("MaximumMessageSize", "1023"),
            ("VisibilityTimeout", "ten"),
        ] {
            assert!(
                matches!(
                    c.apply(&attrs(&[(k, v)]), false),
                    Err(QueueError::InvalidAttributeValue { .. })
                ),
                "{k}={v}"
            );
        }
        c.apply(&attrs(&[("VisibilityTimeout", "0")]), false)
            .unwrap();
        assert_eq!(c.visibility_timeout, 0);
    }

    #[test]
    fn unknown_and_read_only_names_are_invalid_attribute_names() {
        let mut c = QueueConfig::default();
        for n in ["Nope", "QueueArn", "ApproximateNumberOfMessages"] {
            assert!(matches!(
                c.apply(&attrs(&[(n, "1")]), false),
                Err(QueueError::InvalidAttributeName { .. })
            ));
        }
    }

    #[test]
    fn redrive_policy_accepts_string_or_number_counts_and_renders_a_number() {
        let mut c = QueueConfig::default();
        c.apply(
            &attrs(&[(
                "RedrivePolicy",
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":"3"}"#,
            )]),
            false,
        )
        .unwrap();
        assert_eq!(
            c.get("RedrivePolicy").as_deref(),
            Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":3}"#)
        );
        for bad in [
            "not json",
            r#"{"maxReceiveCount":3}"#,
            r#"{"deadLetterTargetArn":"a","maxReceiveCount":0}"#,
            r#"{"deadLetterTargetArn":"a","maxReceiveCount":1001}"#,
        ] {
            assert!(
                matches!(
                    c.apply(&attrs(&[("RedrivePolicy", bad)]), false),
                    Err(QueueError::InvalidParameterValue { .. })
                ),
                "{bad}"
            );
        }
        c.apply(&attrs(&[("RedrivePolicy", "")]), false).unwrap();
        assert_eq!(c.redrive, None);
    }

    #[test]
    fn fifo_is_chosen_at_creation_only() {
        let c = QueueConfig::for_create(&attrs(&[
            ("FifoQueue", "true"),
            ("ContentBasedDeduplication", "true"),
        ]))
        .unwrap();
        assert!(c.fifo && c.content_based_deduplication);
        let mut c = QueueConfig::default();
        assert!(c.apply(&attrs(&[("FifoQueue", "true")]), false).is_err());
        assert!(c
            .apply(&attrs(&[("ContentBasedDeduplication", "true")]), false)
            .is_err());
    }

    #[test]
    fn queue_names() {
        assert!(validate_queue_name("orders_v2-x", false).is_ok());
        assert!(validate_queue_name(&"a".repeat(80), false).is_ok());
        assert!(validate_queue_name(&"a".repeat(81), false).is_err());
        assert!(validate_queue_name("", false).is_err());
        assert!(validate_queue_name("a.b", false).is_err());
        let e = validate_queue_name("jobs.fifo", false).unwrap_err();
        assert!(e.to_string().contains("FifoQueue=true"), "{e}");
        assert!(validate_queue_name("jobs.fifo", true).is_ok());
        assert!(validate_queue_name("jobs", true).is_err());
        assert!(validate_queue_name(".fifo", true).is_err());
    }
}
