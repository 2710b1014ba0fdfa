//! Messages as SQS defines them: the allowed body characters, message attributes
//! (`String`, `Number`, `Binary`, optionally with a custom type label such as
//! `Number.int`) and their limits, sizes, and the MD5 digests SQS returns
//! (`MD5OfMessageBody`, `MD5OfMessageAttributes`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::QueueError;

/// Most message attributes on one message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The value of a message attribute. `Number` attributes are carried as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `StringValue` (data types `String…` and `Number…`).
    String(String),
    /// `BinaryValue` (data type `Binary…`).
    Binary(Vec<u8>),
}

/// One message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number` or `Binary`, optionally followed by `.label`.
    pub data_type: String,
    /// The value, whose kind matches the data type.
    pub value: AttributeValue,
}

impl MessageAttribute {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            data_type: "String".into(),
            value: AttributeValue::String(value.into()),
        }
    }

    /// A `Number` attribute.
    pub fn number(value: impl ToString) -> Self {
        Self {
            data_type: "Number".into(),
            value: AttributeValue::String(value.to_string()),
        }
    }

    /// A `Binary` attribute.
    pub fn binary(value: impl Into<Vec<u8>>) -> Self {
        Self {
            data_type: "Binary".into(),
            value: AttributeValue::Binary(value.into()),
        }
    }

    fn value_bytes(&self) -> &[u8] {
        match &self.value {
            AttributeValue::String(s) => s.as_bytes(),
            AttributeValue::Binary(b) => b,
        }
    }
}

/// Message attributes by name (sorted, as the MD5 algorithm needs).
pub type MessageAttributes = BTreeMap<String, MessageAttribute>;

/// How attributes are kept in `queues.db`: JSON, binary values in base64.
#[derive(Serialize, Deserialize)]
struct Stored {
    t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<String>,
}

/// Encodes attributes for the database; `None` when there are none.
pub(crate) fn encode_attributes(attributes: &MessageAttributes) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let stored: BTreeMap<&String, Stored> = attributes
        .iter()
        .map(|(k, a)| {
            let (s, b) = match &a.value {
                AttributeValue::String(s) => (Some(s.clone()), None),
                AttributeValue::Binary(b) => (None, Some(B64.encode(b))),
            };
            (
                k,
                Stored {
                    t: a.data_type.clone(),
                    s,
                    b,
                },
            )
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

/// Decodes what [`encode_attributes`] stored.
pub(crate) fn decode_attributes(text: Option<&str>) -> MessageAttributes {
    let Some(text) = text else {
        return MessageAttributes::new();
    };
    let stored: BTreeMap<String, Stored> = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "unreadable stored message attributes");
            return MessageAttributes::new();
        }
    };
    stored
        .into_iter()
        .map(|(k, s)| {
            let value = match (s.s, s.b) {
                (_, Some(b)) => AttributeValue::Binary(B64.decode(b).unwrap_or_default()),
                (s, None) => AttributeValue::String(s.unwrap_or_default()),
            };
            (
                k,
                MessageAttribute {
                    data_type: s.t,
                    value,
                },
            )
        })
        .collect()
}

/// Lowercase hex MD5 of some bytes.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// `MD5OfMessageAttributes` (also used for `MD5OfMessageSystemAttributes`), by
/// SQS's algorithm: for each attribute in name order, the name, the data type and
/// the value, each as a 4-byte big-endian length and the bytes, with a transport
/// byte (1 string, 2 binary) before the value. `None` when there are none.
pub fn md5_of_attributes(attributes: &MessageAttributes) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut h = Md5::new();
    for (name, attr) in attributes {
        put(&mut h, name.as_bytes());
        put(&mut h, attr.data_type.as_bytes());
        h.update([match attr.value {
            AttributeValue::String(_) => 1u8,
            AttributeValue::Binary(_) => 2u8,
        }]);
        put(&mut h, attr.value_bytes());
    }
    Some(hex::encode(h.finalize()))
}

fn put(h: &mut Md5, bytes: &[u8]) {
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(bytes);
}

/// The size SQS counts against `MaximumMessageSize`: the body plus every
/// attribute's name, data type and value.
pub fn message_size(body: &str, attributes: &MessageAttributes) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(n, a)| n.len() + a.data_type.len() + a.value_bytes().len())
            .sum::<usize>()
}

/// SQS accepts `#x9 | #xA | #xD | #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF`.
fn allowed_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Checks a message body: at least one character, all of them allowed.
pub(crate) fn validate_body(body: &str) -> Result<(), QueueError> {
    if body.is_empty() {
        return Err(QueueError::InvalidParameters {
            reason: "The message body must be at least one character long.".into(),
        });
    }
    if let Some((i, c)) = body.char_indices().find(|(_, c)| !allowed_char(*c)) {
        return Err(QueueError::InvalidMessageContents {
            reason: format!(
                "character U+{:04X} at byte {i} is outside the allowed set (#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF).",
                c as u32
            ),
        });
    }
    Ok(())
}

fn valid_attribute_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// Checks message attributes: at most 10, valid names and data types, values of
/// the right kind, non-empty, numbers that parse.
pub(crate) fn validate_attributes(attributes: &MessageAttributes) -> Result<(), QueueError> {
    let bad = |name: &str, reason: String| QueueError::InvalidParameters {
        reason: format!("Message attribute '{name}' {reason}"),
    };
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(QueueError::InvalidParameters {
            reason: format!(
                "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
                attributes.len()
            ),
        });
    }
    for (name, attr) in attributes {
        if !valid_attribute_name(name) {
            return Err(bad(
                name,
                "has an invalid name: use up to 256 of A-Z a-z 0-9 _ - . , not starting or ending with a period, without consecutive periods, and not starting with AWS. or Amazon.".into(),
            ));
        }
        let (base, label) = attr
            .data_type
            .split_once('.')
            .unwrap_or((attr.data_type.as_str(), ""));
        if attr.data_type.len() > 256
            || !matches!(base, "String" | "Number" | "Binary")
            || (attr.data_type.contains('.') && label.is_empty())
        {
            return Err(bad(
                name,
                format!(
                    "has an invalid data type '{}': use String, Number or Binary, optionally followed by .label.",
                    attr.data_type
                ),
            ));
        }
        match (&attr.value, base) {
            (AttributeValue::Binary(b), "Binary") if !b.is_empty() => {}
            (AttributeValue::String(s), "String") if !s.is_empty() => {}
            (AttributeValue::String(s), "Number") => {
                if !valid_number(s) {
                    return Err(bad(name, format!("has an invalid Number value '{s}'.")));
                }
            }
            (_, base) => {
                let field = if base == "Binary" {
                    "BinaryValue"
                } else {
                    "StringValue"
                };
                return Err(bad(
                    name,
                    format!("must contain a non-empty {field} for type '{base}'."),
                ));
            }
        }
    }
    Ok(())
}

/// A decimal number as SQS accepts it (at most 38 significant digits).
fn valid_number(s: &str) -> bool {
    let t = s.trim();
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    !t.is_empty()
        && digits <= 38 + 4 // exponent digits
        && t.parse::<f64>().map(f64::is_finite).unwrap_or(false)
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// The subset of `attributes` that a receive asked for: `All`, `.*`, exact names,
/// or prefixes written `prefix.*`.
pub(crate) fn select_attributes(
    attributes: &MessageAttributes,
    wanted: &[String],
) -> MessageAttributes {
    if wanted.iter().any(|w| w == "All" || w == ".*") {
        return attributes.clone();
    }
    attributes
        .iter()
        .filter(|(name, _)| {
            wanted.iter().any(|w| match w.strip_suffix(".*") {
                Some(prefix) => name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => *name == w,
            })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_body_is_hex_md5() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"derp"), "58fd9edd83341c29f1aebba81c31e257");
    }

    /// Digests that AWS returns for these attributes (pinned by moto's and
    /// LocalStack's SQS test suites).
    #[test]
    fn md5_of_attributes_matches_sqs() {
        for (name, value, digest) in [
            (
                "timestamp",
                "1493147359900",
                "235c5c510d26fb653d073faed50ae77c",
            ),
            (
                "timestamp",
                "1493147359901",
                "994258b45346a2cc3f9cbb611aa7af30",
            ),
            (
                "SOME_Valid.attribute-Name",
                "1493147359900",
                "36655e7e9d7c0e8479fa3f3f42247ae7",
            ),
        ] {
            let attrs =
                MessageAttributes::from([(name.to_string(), MessageAttribute::number(value))]);
            assert_eq!(md5_of_attributes(&attrs).as_deref(), Some(digest), "{name}");
        }
        assert_eq!(md5_of_attributes(&MessageAttributes::new()), None);
    }

    #[test]
    fn binary_attributes_use_transport_byte_two() {
        let attrs =
            MessageAttributes::from([("bin".to_string(), MessageAttribute::binary(*b"hi"))]);
        let mut expected = Vec::new();
        expected.extend(3u32.to_be_bytes());
        expected.extend(b"bin");
        expected.extend(6u32.to_be_bytes());
        expected.extend(b"Binary");
        expected.push(2);
        expected.extend(2u32.to_be_bytes());
        expected.extend(b"hi");
        assert_eq!(md5_of_attributes(&attrs), Some(md5_hex(&expected)));
    }

    #[test]
    fn bodies_outside_the_allowed_characters_are_rejected() {
        assert!(validate_body("tab\there, newline\n, emoji \u{1F600}").is_ok());
        assert!(matches!(
            validate_body(""),
            Err(QueueError::InvalidParameters { .. })
        ));
        let e = validate_body("bell\u{7}").unwrap_err();
        assert!(matches!(e, QueueError::InvalidMessageContents { .. }));
        assert!(e.to_string().contains("U+0007"), "{e}");
        assert!(validate_body("\u{FFFE}").is_err());
    }

    #[test]
    fn attribute_rules() {
        let one = |name: &str, attr: MessageAttribute| {
            validate_attributes(&MessageAttributes::from([(name.to_string(), attr)]))
        };
        assert!(one("ok.name-1_x", MessageAttribute::string("v")).is_ok());
        assert!(one("n", MessageAttribute::number("-1.5e3")).is_ok());
        assert!(one(
            "n",
            MessageAttribute {
                data_type: "Number.int".into(),
                value: AttributeValue::String("7".into())
            }
        )
        .is_ok());
        for bad in ["", ".x", "x.", "a..b", "AWS.x", "amazon.x", "sp ace"] {
            assert!(one(bad, MessageAttribute::string("v")).is_err(), "{bad:?}");
        }
        assert!(one("e", MessageAttribute::string("")).is_err());
        assert!(one("n", MessageAttribute::number("twelve")).is_err());
        assert!(one("b", MessageAttribute::binary(Vec::new())).is_err());
        assert!(one(
            "t",
            MessageAttribute {
                data_type: "Text".into(),
                value: AttributeValue::String("v".into())
            }
        )
        .is_err());
        assert!(one(
            "t",
            MessageAttribute {
                data_type: "String.".into(),
                value: AttributeValue::String("v".into())
            }
        )
        .is_err());
        assert!(one(
            "t",
            MessageAttribute {
                data_type: "Binary".into(),
                value: AttributeValue::String("v".into())
            }
        )
        .is_err());
        let eleven: MessageAttributes = (0..11)
            .map(|i| (format!("a{i}"), MessageAttribute::string("v")))
            .collect();
        let e = validate_attributes(&eleven).unwrap_err();
        assert!(e.to_string().contains("[11]"), "{e}");
    }

    #[test]
    fn receive_selects_attributes_by_name_prefix_or_all() {
        let attrs: MessageAttributes = ["a", "b.x", "b.y", "bz"]
            .iter()
            .map(|n| (n.to_string(), MessageAttribute::string("v")))
            .collect();
        let names = |w: &[&str]| -> Vec<String> {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            select_attributes(&attrs, &w).into_keys().collect()
        };
        assert_eq!(names(&["All"]).len(), 4);
        assert_eq!(names(&[".*"]).len(), 4);
        assert_eq!(names(&["a", "nope"]), ["a"]);
        assert_eq!(names(&["b.*"]), ["b.x", "b.y"]);
        assert!(names(&[]).is_empty());
    }

    #[test]
    fn stored_attributes_round_trip() {
        let attrs = MessageAttributes::from([
            ("s".to_string(), MessageAttribute::string("text")),
            ("n".to_string(), MessageAttribute::number(42)),
            ("b".to_string(), MessageAttribute::binary(vec![0u8, 255, 7])),
        ]);
        let text = encode_attributes(&attrs).unwrap();
        assert_eq!(decode_attributes(Some(&text)), attrs);
        assert_eq!(encode_attributes(&MessageAttributes::new()), None);
        assert!(decode_attributes(None).is_empty());
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let attrs = MessageAttributes::from([("k".to_string(), MessageAttribute::string("vv"))]);
        assert_eq!(message_size("body", &attrs), 4 + 1 + 6 + 2);
    }
}
