//! `stratus-iam` is Stratus's authorization: IAM-style policy documents and what a
//! request to the API listener needs allowed. It owns:
//!
//! - **policies** ([`Policy::parse`], [`evaluate`], [`authorize`]): IAM's policy language for
//!   identity-based policies — `Version`, `Statement`, `Sid`, `Effect`,
//!   `Action`/`NotAction`, `Resource`/`NotResource`, `*` and `?` wildcards; explicit
//!   Deny wins, then Allow, default deny (`policy.rs`, matching in `wildcard.rs`);
//! - **classification** ([`classify`]): an HTTP request to the Lambda, SQS or
//!   `/stratus/v1` APIs → the action(s) and resource ARN(s) it needs allowed
//!   (`classify.rs`);
//! - **denials** ([`access_denied`], [`denied_message`]): AWS's
//!   `AccessDeniedException` text and error shapes (`deny.rs`).
//!
//! It knows nothing of keys, signatures or storage: the server's authentication
//! finds the caller's policies, then asks this crate whether each classified request
//! is allowed. [`Policy::parse`] and [`evaluate`] never panic on any input (they are
//! fuzz targets: [`Policy::parse_bytes`] takes raw bytes).

mod classify;
mod deny;
mod policy;
mod wildcard;

pub use classify::{
    classify, needs_body, ClassifyError, HttpRequest, Protocol, Request, Scope,
    AUTOSCALING_TARGET_PREFIX, LOGS_TARGET_PREFIX, STRATUS_ACTIONS,
};
pub use deny::{access_denied, denied_message, AccessDenied};
pub use policy::{
    authorize, evaluate, Decision, Effect, Patterns, Policy, PolicyError, PolicyErrorKind,
    Statement, MAX_POLICY_BYTES,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Mutated policy documents (bytes flipped, cut, repeated) never make parsing or
    /// evaluation panic; the cargo-fuzz target explores further.
    #[test]
    fn mutated_documents_never_panic() {
        let seed = br#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":["lambda:*","sqs:Send?essage"],"Resource":"arn:aws:lambda:*:*:function:x*"},{"Effect":"Deny","NotAction":"s3:*","NotResource":["*"]}]}"#;
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[]\":,*?\\ AllowDenyActionResourceNot\xff\x00";
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut doc = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % doc.len();
                match next() % 3 {
                    0 => doc[i] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        doc.remove(i);
                    }
                    _ => doc.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            if let Ok(p) = Policy::parse_bytes(&doc) {
                accepted += 1;
                let _ = evaluate(
                    &[p],
                    "lambda:InvokeFunction",
                    "arn:aws:lambda:r:1:function:xy",
                );
            }
        }
        // Some mutations keep the document valid, so evaluation ran too.
        assert!(accepted > 0);
    }
}
