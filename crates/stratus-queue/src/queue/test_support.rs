//! Fixtures shared by the queue tests: queues on a manual clock or the real one,
//! on either backend (a temporary `queues.db`, or a fresh database of the test
//! binary's PostgreSQL), and [`on_both_backends!`], which runs a test on both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, ManualClock, SystemClock};

use super::Queues;

pub(super) const T0: i64 = 1_700_000_000_000;
pub(super) const NOW: Option<Duration> = Some(Duration::ZERO);

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

// Fields drop in order: the queues (closing the database) before the directory.
pub(crate) struct Fixture {
    pub(crate) q: Arc<Queues>,
    pub(crate) clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// A fresh PostgreSQL database of the test binary's server.
pub(crate) fn pg_database() -> String {
    stratus_testkit::Postgres::shared().database()
}

async fn open(kind: Kind, endpoint: &str, account: &str, clock: Arc<dyn Clock>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sealer = stratus_seal::Sealer::ephemeral().unwrap();
    let q = match kind {
        Kind::Sqlite => {
            Queues::open_with_clock(dir.path(), endpoint, "us-east-1", account, sealer, clock)
                .unwrap()
        }
        Kind::Postgres => {
            let url = tokio::task::spawn_blocking(pg_database).await.unwrap();
            Queues::open_postgres(&url, endpoint, "us-east-1", account, sealer, clock)
                .await
                .unwrap()
        }
    };
    Fixture {
        _dir: dir,
        q,
        clock: Arc::new(ManualClock::new(T0)),
    }
}

/// Queues on a clock that moves only when the test says.
pub(crate) async fn manual(kind: Kind) -> Fixture {
    let clock = Arc::new(ManualClock::new(T0));
    let mut f = open(
        kind,
        "http://127.0.0.1:9000/",
        "123456789012",
        clock.clone(),
    )
    .await;
    f.clock = clock;
    f
}

/// Queues on the system clock (long polls that really wait).
pub(crate) async fn real(kind: Kind) -> Fixture {
    open(
        kind,
        "http://localhost:1",
        "000000000000",
        Arc::new(SystemClock),
    )
    .await
}

/// Runs each `fixture name` test (`async fn name(f: Fixture)`) twice: on SQLite
/// (`name::sqlite`) and on PostgreSQL (`name::postgres`).
macro_rules! on_both_backends {
    ($($fixture:ident $name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::queue::test_support::{$fixture, Kind};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($fixture(Kind::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($fixture(Kind::Postgres).await).await
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

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
