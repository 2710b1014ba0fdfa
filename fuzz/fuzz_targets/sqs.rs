//! A sequence of SQS JSON-protocol requests (one a line: `Action<TAB>body`) →
//! `stratus_queue::handle` on a fresh queue store, as the API listener calls it for
//! `X-Amz-Target: AmazonSQS.<Action>`. Every answer must be SQS's JSON (a result or
//! an error shape), and no request may be a server error: bad names, numbers out of
//! range and malformed attributes are the caller's fault (400).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use stratus_fuzz::{block_on, scratch_dir, text};
use stratus_queue::{ManualClock, Queues};

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let dir = scratch_dir().join("sqs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let queues = Queues::open_with_clock(
        &dir,
        "http://127.0.0.1:9000",
        "us-east-1",
        "000000000000",
        stratus_seal::Sealer::ephemeral().unwrap(),
        clock.clone(),
    )
    .unwrap();
    // A bounded number of requests per input keeps every run short.
    for line in text.lines().take(16) {
        let (action, body) = line.split_once('\t').unwrap_or((line, ""));
        let response = block_on(stratus_queue::handle(
            &queues,
            &format!("AmazonSQS.{action}"),
            body.as_bytes(),
        ));
        let status = response.status();
        assert!(!status.is_server_error(), "{action} {body:?}: {status}");
        let bytes = block_on(axum_body(response));
        let _: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{action}: answer is not JSON ({e})"));
        clock.advance(std::time::Duration::from_secs(1));
    }
    drop(queues);
    let _ = std::fs::remove_dir_all(&dir);
});

async fn axum_body<B: http_body_util::BodyExt>(response: http::Response<B>) -> bytes::Bytes {
    response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}
