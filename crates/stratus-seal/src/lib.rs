//! `stratus-seal` owns encryption at rest: envelope encryption with AES-256-GCM
//! (RustCrypto's `aes-gcm`; nonces from the OS RNG; no cryptography of our own).
//!
//! - A **master key** (32 bytes) comes from `STRATUS_MASTER_KEY` (base64) or from
//!   `{data-dir}/master.key`, created at first start with mode 0600 and refused when
//!   group or others may read it ([`master`]).
//! - **Data keys** (random 256-bit) are stored wrapped by the master key in the
//!   `seal_keys` table of `state.db`; the current one seals new values, every one
//!   opens what it sealed ([`keyring`]).
//! - A [`Sealer`] seals and opens values. A sealed value carries a version byte, the
//!   id of its data key and its nonce, and is bound by associated data to its place
//!   (table, column, row), so it cannot be moved to another row ([`sealer`]).
//! - [`rotate`] re-wraps every data key under a new master key (and may start a new
//!   data key); [`DataDirLock`] is how a running server marks its data dir, so
//!   rotation never races a server ([`lock`]).
//! - A cluster's nodes share data keys kept in the shared database, wrapped by the
//!   master key all of them are given ([`shared`]).

pub mod error;
pub mod keyring;
pub mod lock;
pub mod master;
pub mod sealer;
pub mod shared;

pub use error::{OpenError, SealError};
pub use keyring::{rotate, Rotated, Rotation};
pub use lock::{DataDirLock, LOCK_FILE};
pub use master::{KeySource, MasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE};
pub use sealer::Sealer;
pub use shared::{new_shared_key, open_shared_keys, WrappedKey};
