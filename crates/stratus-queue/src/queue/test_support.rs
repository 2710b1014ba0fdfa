//! Fixtures shared by the queue tests: queues on a manual clock or the real one, in
//! a temporary directory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::ManualClock;

use super::Queues;

pub(super) const T0: i64 = 1_700_000_000_000;
pub(super) const NOW: Option<Duration> = Some(Duration::ZERO);

// Fields drop in order: the queues (closing the database) before the directory.
pub(super) struct Fixture {
    pub(super) q: Arc<Queues>,
    pub(super) clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

pub(super) fn manual() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let q = Queues::open_with_clock(
        dir.path(),
        "http://127.0.0.1:9000/",
        "us-east-1",
        "123456789012",
        stratus_seal::Sealer::ephemeral().unwrap(),
        clock.clone(),
    )
    .unwrap();
    Fixture {
        _dir: dir,
        q,
        clock,
    }
}

pub(super) fn real() -> (tempfile::TempDir, Arc<Queues>) {
    let dir = tempfile::tempdir().unwrap();
    let q = Queues::open(
        dir.path(),
        "http://localhost:1",
        "us-east-1",
        "000000000000",
        stratus_seal::Sealer::ephemeral().unwrap(),
    )
    .unwrap();
    (dir, q)
}

pub(super) fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) async fn create(q: &Queues, name: &str, pairs: &[(&str, &str)]) {
    q.create_queue(name, &attrs(pairs), &HashMap::new())
        .await
        .unwrap();
}
