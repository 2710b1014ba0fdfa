//! Stratus's built-in queue service: durable queues with Amazon SQS semantics,
//! served over the SQS JSON protocol so that AWS SDKs and the AWS CLI work against
//! it unchanged, and used directly by the rest of Stratus (the SQS event-source
//! poller) through [`Queues`].
//!
//! Module boundaries:
//! - [`store`]: `queues.db` (SQLite, WAL, `synchronous=FULL`) owned by one writer
//!   thread that group-commits every operation waiting at one moment; a send is
//!   on disk before it is answered.
//! - `postgres`: the other backend, a cluster's PostgreSQL database shared by
//!   every node ([`Queues::open_postgres`]): the same rows, receives with
//!   `FOR UPDATE SKIP LOCKED`, long polls woken across nodes by `LISTEN/NOTIFY`.
//! - [`queue`]: the semantics (visibility timeouts, receipt handles, delays,
//!   retention, redrive to dead-letter queues, long polling, FIFO ordering and
//!   deduplication) behind the library API [`Queues`], and [`Queues::peek`], an
//!   operator's read that receives nothing. No HTTP.
//! - [`attributes`]: queue attributes, their names, ranges and defaults.
//! - [`message`]: message bodies and attributes, sizes and SQS's MD5 digests.
//! - [`http`]: the wire protocol: [`handle`] answers one `X-Amz-Target:
//!   AmazonSQS.<Action>` request; errors become SQS's JSON error shape in one place
//!   ([`SqsError`]).
//! - [`clock`]: time, injectable for tests.
//!
//! Mounting: route every `POST` whose `X-Amz-Target` starts with [`TARGET_PREFIX`]
//! to [`handle`] with the header value and the body.

pub mod attributes;
pub mod clock;
pub mod error;
pub mod http;
pub mod message;
mod postgres;
pub mod queue;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::QueueError;
pub use http::{handle, SqsError, CONTENT_TYPE, TARGET_PREFIX};
pub use message::{AttributeValue, MessageAttribute, MessageAttributes};
pub use queue::{
    Counter as MessageCounter, Depth, MessageState, Peek, Peeked, Queues, Received, SendMessage,
    Sent,
};
pub use store::StoreError;
