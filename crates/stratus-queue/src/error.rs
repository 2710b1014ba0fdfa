//! What can go wrong in the queue core, one variant per SQS error condition. The
//! JSON-protocol layer ([`crate::http`]) turns each variant into SQS's wire error
//! (`__type`, `x-amzn-query-error`, status) in one place.

use crate::store::StoreError;

/// An error of a queue operation. The `Display` text is the message a client sees.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No queue of that name (or the URL names another account).
    #[error("The specified queue does not exist: {name}.")]
    QueueDoesNotExist {
        /// The queue name (or URL) asked for.
        name: String,
    },
    /// `CreateQueue` of an existing queue with a different attribute value.
    #[error("A queue already exists with the same name and a different value for attribute {attribute}.")]
    QueueNameExists {
        /// The queue's name.
        name: String,
        /// The attribute whose value differs.
        attribute: String,
    },
    /// A `QueueUrl` that is not `.../{account}/{name}`.
    #[error("The address {url} is not valid for this endpoint: a queue URL ends with /ACCOUNT/QUEUE_NAME.")]
    InvalidAddress {
        /// The URL as given.
        url: String,
    },
    /// An attribute name SQS does not have, or one that cannot be set.
    #[error("Unknown Attribute {name}.")]
    InvalidAttributeName {
        /// The attribute name as given.
        name: String,
    },
    /// A queue attribute with a value out of range or malformed.
    #[error("Invalid value for the parameter {name}. Reason: {reason}")]
    InvalidAttributeValue {
        /// The attribute.
        name: String,
        /// Why the value is refused.
        reason: String,
    },
    /// A request parameter with a value out of range or malformed.
    #[error("Value {value} for parameter {name} is invalid. Reason: {reason}")]
    InvalidParameterValue {
        /// The parameter.
        name: String,
        /// The value as given.
        value: String,
        /// Why the value is refused.
        reason: String,
    },
    /// A request that breaks a rule across parameters (size limits, queue type).
    #[error("One or more parameters are invalid. Reason: {reason}")]
    InvalidParameters {
        /// Which rule is broken.
        reason: String,
    },
    /// A required parameter is absent.
    #[error("The request must contain the parameter {name}.")]
    MissingParameter {
        /// The missing parameter.
        name: String,
    },
    /// A receipt handle this service did not issue, or issued for another queue.
    #[error("The input receipt handle \"{handle}\" is not a valid receipt handle.")]
    ReceiptHandleIsInvalid {
        /// The handle as given.
        handle: String,
    },
    /// `ChangeMessageVisibility` of a message that is not in flight (its visibility
    /// timeout ran out, or it was received again with a newer receipt handle).
    #[error("The message referred to by receipt handle \"{handle}\" is not in flight.")]
    MessageNotInflight {
        /// The handle as given.
        handle: String,
    },
    /// A message body with characters outside SQS's allowed set.
    #[error("Invalid binary character in the message body: {reason}")]
    InvalidMessageContents {
        /// What is wrong with the body.
        reason: String,
    },
    /// An SQS action Stratus does not implement.
    #[error("{operation} is not supported by Stratus queues.")]
    UnsupportedOperation {
        /// The SQS action asked for.
        operation: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueueError {
    pub(crate) fn param(name: &str, value: impl ToString, reason: impl Into<String>) -> Self {
        Self::InvalidParameterValue {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn attr_value(name: &str, reason: impl Into<String>) -> Self {
        Self::InvalidAttributeValue {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn no_queue(name: &str) -> Self {
        Self::QueueDoesNotExist {
            name: name.to_string(),
        }
    }
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(e))
    }
}
