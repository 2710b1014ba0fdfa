//! Leader election with fencing: one node of the cluster leads, and what it does
//! as leader (firing schedules) is refused once it no longer does.
//!
//! - **Who leads.** The node whose dedicated PostgreSQL session holds the session
//!   advisory lock [`LEADER_LOCK`]. Every node keeps one such session
//!   ([`Election::spawn`]); a follower polls `pg_try_advisory_lock` every [`POLL`].
//! - **Fencing token.** On taking the lock the new leader raises
//!   `cluster_leader.epoch` by one in that session (migration `V30__leader.sql`):
//!   its epoch. [`Leadership::record_firing`] writes a schedule period in a
//!   transaction that first reads the current epoch `FOR SHARE` and refuses
//!   ([`Firing::Deposed`]) when it is not the caller's; the next leader's epoch
//!   increment waits for that row lock, so a deposed leader's write either commits
//!   before the new epoch exists or is refused. The period `(function, rule, due)`
//!   is the primary key of `schedule_firings`: no period is recorded twice,
//!   whichever leader tries.
//! - **Noticing.** A leader checks its session every [`CHECK`]; a check that fails,
//!   or takes longer than [`CHECK_TIMEOUT`], or finds another epoch, makes it step
//!   down at once and drop the session. TCP keepalives on both ends (idle 2 s, a
//!   probe a second, 3 probes: client options and the session's
//!   `tcp_keepalives_*`) end a dead or partitioned node's session, and with it the
//!   lock, within about 5 s; a SIGKILLed node's socket is closed by its kernel, so
//!   its lock is free at once and a follower's next poll takes it. A clean shutdown
//!   unlocks before leaving. Timing is no guarantee (a paused process, a slow
//!   network); the fence is.
//! - **Local view.** [`Leadership`] is a watch of `Some(epoch)` while this node
//!   leads, for local tasks (the schedule task of `triggers.rs`); [`current`] reads
//!   who leads, for `GET /stratus/v1/cluster`.
//!
//! Nothing here runs on a single node, nor on any invocation path.

use std::future::Future;
use std::str::FromStr as _;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio_postgres::types::ToSql;

use super::pg::{self, redact, PgError};
use super::ClusterError;

/// The leader's session advisory lock ("STRATUS" 3).
pub const LEADER_LOCK: i64 = 0x5354_5241_5455_5303;

/// How often a follower tries to take the lock.
pub const POLL: Duration = Duration::from_millis(500);

/// How often the leader checks its session.
pub const CHECK: Duration = Duration::from_secs(1);

/// A check (or election statement) with no answer after this long fails: the
/// leader steps down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a fenced write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks between two prunings of old firings (about ten minutes).
const PRUNE_EVERY: u32 = 600;

/// A recorded firing not yet known to be in the async queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    /// The function.
    pub function: String,
    /// The rule.
    pub rule: String,
    /// The period (epoch ms).
    pub due_ms: i64,
    /// The request id it was recorded with (and must be sent with).
    pub request_id: String,
}

/// Errors of the election and of fenced writes.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The database failed or could not be reached.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The database did not answer in time.
    #[error("cluster leader: cannot {what}: no answer from the cluster database within {after:?}")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// Another node became leader while this one held the lock (an operator
    /// ended its session, or the lock was lost unnoticed).
    #[error("cluster leader: epoch {epoch} was superseded by epoch {current}")]
    Superseded {
        /// This node's epoch.
        epoch: i64,
        /// The current one.
        current: i64,
    },
}

/// What [`Leadership::record_firing`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// Recorded: the caller fires this period.
    Recorded,
    /// A leader already recorded this period: it is not fired again.
    AlreadyFired,
    /// The caller's epoch is not the current one (it was deposed): nothing written.
    Deposed {
        /// The current epoch.
        current: i64,
    },
}

/// This node's view of the election: whether it leads, and fenced writes.
#[derive(Debug, Clone)]
pub struct Leadership {
    node: String,
    pool: Pool,
    leading: watch::Receiver<Option<i64>>,
}

impl Leadership {
    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// This node's epoch while it leads.
    pub fn epoch(&self) -> Option<i64> {
        *self.leading.borrow()
    }

    /// A watch of [`Self::epoch`].
    pub fn watch(&self) -> watch::Receiver<Option<i64>> {
        self.leading.clone()
    }

    /// Records that the leader of `epoch` fires `rule` of `function` for the period
    /// due at `due_ms` (epoch ms) as request `request_id`, if `epoch` is still the
    /// current one and no leader recorded that period yet. One transaction.
    pub async fn record_firing(
        &self,
        epoch: i64,
        function: &str,
        rule: &str,
        due_ms: i64,
        request_id: &str,
    ) -> Result<Firing, LeaderError> {
        timed(
            "record a schedule firing",
            WRITE_TIMEOUT,
            record(
                &self.pool, &self.node, epoch, function, rule, due_ms, request_id,
            ),
        )
        .await
    }
}

impl Leadership {
    /// Notes that the firing of `rule` of `function` for `due_ms` is in the async
    /// queue.
    pub async fn mark_enqueued(
        &self,
        function: &str,
        rule: &str,
        due_ms: i64,
    ) -> Result<(), LeaderError> {
        timed("note a schedule firing as sent", WRITE_TIMEOUT, async {
            let c = pg::client(&self.pool).await?;
            c.execute(
                "UPDATE schedule_firings SET enqueued = true \
                 WHERE function_name = $1 AND rule = $2 AND due_ms = $3",
                &[&function, &rule, &due_ms],
            )
            .await
            .map_err(PgError::query("note a schedule firing as sent"))?;
            Ok(())
        })
        .await
    }

    /// Firings recorded in the last `within` whose event is not known to be in the
    /// async queue (their leader died, or the queue failed, between the two).
    pub async fn unsent(&self, within: Duration) -> Result<Vec<Unsent>, LeaderError> {
        timed("read unsent schedule firings", WRITE_TIMEOUT, async {
            let c = pg::client(&self.pool).await?;
            let ms = within.as_millis() as i64;
            let rows = c
                .query(
                    "SELECT function_name, rule, due_ms, request_id FROM schedule_firings \
                     WHERE NOT enqueued AND fired_at > now() - $1::int8 * interval '1 millisecond' \
                     ORDER BY fired_at",
                    &[&ms],
                )
                .await
                .map_err(PgError::query("read unsent schedule firings"))?;
            Ok(rows
                .iter()
                .map(|r| Unsent {
                    function: r.get(0),
                    rule: r.get(1),
                    due_ms: r.get(2),
                    request_id: r.get(3),
                })
                .collect())
        })
        .await
    }
}

async fn timed<T>(
    what: &'static str,
    after: Duration,
    f: impl Future<Output = Result<T, LeaderError>>,
) -> Result<T, LeaderError> {
    tokio::time::timeout(after, f)
        .await
        .map_err(|_| LeaderError::Timeout { what, after })?
}

async fn record(
    pool: &Pool,
    node: &str,
    epoch: i64,
    function: &str,
    rule: &str,
    due_ms: i64,
    request_id: &str,
) -> Result<Firing, LeaderError> {
    let mut c = pg::client(pool).await?;
    let tx = c
        .transaction()
        .await
        .map_err(PgError::query("begin recording a schedule firing"))?;
    // FOR SHARE: a new leader's epoch increment waits until this commits.
    let current: i64 = tx
        .query_one(
            "SELECT epoch FROM cluster_leader WHERE id = 1 FOR SHARE",
            &[],
        )
        .await
        .map_err(PgError::query("read the leader's epoch"))?
        .get(0);
    if current != epoch {
        // Dropping the transaction rolls it back.
        return Ok(Firing::Deposed { current });
    }
    let n = tx
        .execute(
            "INSERT INTO schedule_firings (function_name, rule, due_ms, epoch, node, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&function, &rule, &due_ms, &epoch, &node, &request_id],
        )
        .await
        .map_err(PgError::query("record a schedule firing"))?;
    tx.commit()
        .await
        .map_err(PgError::query("commit a schedule firing"))?;
    Ok(if n == 1 {
        Firing::Recorded
    } else {
        Firing::AlreadyFired
    })
}

/// This node's candidacy: made at start, run by [`Election::spawn`].
#[derive(Debug)]
pub struct Election {
    url: String,
    tx: watch::Sender<Option<i64>>,
    leadership: Leadership,
    forget_nodes_after: Duration,
}

/// How long a stopped or dead node's row stays before the leader deletes it, by
/// default (`--forget-nodes-after`).
pub const FORGET_NODES_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Election {
    /// Prepares node `node`'s candidacy in the cluster database at `url` (reached
    /// now, and migrated if needed); it does not campaign until spawned.
    pub async fn new(url: &str, node: &str) -> Result<Self, LeaderError> {
        let pool = pg::connect(url, 2).await?;
        pg::migrate(&pool, url).await?;
        let (tx, leading) = watch::channel(None);
        Ok(Self {
            url: url.to_string(),
            tx,
            leadership: Leadership {
                node: node.to_string(),
                pool,
                leading,
            },
            forget_nodes_after: FORGET_NODES_AFTER,
        })
    }

    /// While leading, delete the rows of nodes without a heartbeat for `after`.
    pub fn forget_nodes_after(mut self, after: Duration) -> Self {
        self.forget_nodes_after = after;
        self
    }

    /// What local tasks watch.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Campaigns until `stop` turns true (then gives the lead up at once).
    pub fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(campaign(
            self.url,
            self.leadership.node,
            self.tx,
            stop,
            self.forget_nodes_after,
        ))
    }
}

async fn campaign(
    url: String,
    node: String,
    tx: watch::Sender<Option<i64>>,
    mut stop: watch::Receiver<bool>,
    forget_nodes_after: Duration,
) {
    let mut failing = false;
    loop {
        match term(
            &url,
            &node,
            &tx,
            &mut stop,
            &mut failing,
            forget_nodes_after,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                if let Some(epoch) = tx.send_replace(None) {
                    tracing::warn!(%node, epoch, error = %e, "this node stopped leading the cluster; it stands again");
                } else if !failing {
                    tracing::warn!(url = %redact(&url), error = %e, "cannot take part in the cluster's leader election; retrying");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One query on the election session, bounded by [`CHECK_TIMEOUT`].
async fn ask(
    client: &tokio_postgres::Client,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<tokio_postgres::Row, LeaderError> {
    timed(what, CHECK_TIMEOUT, async {
        client
            .query_one(sql, params)
            .await
            .map_err(|e| LeaderError::from(PgError::query(what)(e)))
    })
    .await
}

/// One session: follow until the lock is ours, then lead until the session fails
/// or `stop`. `Ok` only when stopped.
async fn term(
    url: &str,
    node: &str,
    tx: &watch::Sender<Option<i64>>,
    stop: &mut watch::Receiver<bool>,
    failing: &mut bool,
    forget_nodes_after: Duration,
) -> Result<(), LeaderError> {
    let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| PgError::Url {
        url: redact(url),
        reason: e.to_string(),
    })?;
    cfg.connect_timeout(Duration::from_secs(5))
        .keepalives_idle(Duration::from_secs(2))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(5))
        .application_name("stratus-leader-election");
    let (client, conn) =
        cfg.connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| PgError::Connect {
                url: redact(url),
                reason: pg::chain(&e),
            })?;
    // Ends by itself when `client` is dropped (or the connection fails).
    tokio::spawn(conn);
    timed("set the session's keepalives", CHECK_TIMEOUT, async {
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; \
                 SET tcp_keepalives_count = 3",
            )
            .await
            .map_err(|e| LeaderError::from(PgError::query("set the session's keepalives")(e)))
    })
    .await?;
    if *failing {
        tracing::info!(%node, "taking part in the cluster's leader election again");
        *failing = false;
    }
    loop {
        let row = ask(
            &client,
            "take the leader lock",
            "SELECT pg_try_advisory_lock($1)",
            &[&LEADER_LOCK],
        )
        .await?;
        if row.get::<_, bool>(0) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
    let epoch: i64 = ask(
        &client,
        "start a leader's epoch",
        "UPDATE cluster_leader SET epoch = epoch + 1, node = $1, since = now() \
         WHERE id = 1 RETURNING epoch",
        &[&node],
    )
    .await?
    .get(0);
    tx.send_replace(Some(epoch));
    tracing::info!(%node, epoch, "this node leads the cluster");
    let mut checks = 0u32;
    loop {
        if checks.is_multiple_of(PRUNE_EVERY) {
            prune(&client, forget_nodes_after).await;
        }
        checks = checks.wrapping_add(1);
        let stopping = tokio::select! {
            _ = tokio::time::sleep(CHECK) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            tx.send_replace(None);
            // Unlocked now, so a follower takes over at its next poll.
            let _ = tokio::time::timeout(
                CHECK_TIMEOUT,
                client.execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK]),
            )
            .await;
            tracing::info!(%node, epoch, "this node gave up leading the cluster (shutting down)");
            return Ok(());
        }
        let current: i64 = ask(
            &client,
            "check the leader's session",
            "SELECT epoch FROM cluster_leader WHERE id = 1",
            &[],
        )
        .await?
        .get(0);
        if current != epoch {
            return Err(LeaderError::Superseded { epoch, current });
        }
    }
}

/// Forgets firings older than a day (no schedule looks that far back), and the
/// rows of nodes without a heartbeat for `forget_nodes_after`.
async fn prune(client: &tokio_postgres::Client, forget_nodes_after: Duration) {
    let forgotten = tokio::time::timeout(
        CHECK_TIMEOUT,
        super::nodes::forget_older_than(client, forget_nodes_after),
    )
    .await;
    match forgotten {
        Ok(Ok(ids)) if !ids.is_empty() => {
            tracing::info!(nodes = ?ids, after = ?forget_nodes_after, "forgot nodes without a heartbeat");
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "cannot forget old nodes"),
        _ => {}
    }
    let pruned = tokio::time::timeout(
        CHECK_TIMEOUT,
        client.execute(
            "DELETE FROM schedule_firings WHERE fired_at < now() - interval '1 day'",
            &[],
        ),
    )
    .await;
    if let Ok(Err(e)) = pruned {
        tracing::debug!(error = %e, "cannot prune old schedule firings");
    }
}

/// Who leads now: the node that last became leader, with its epoch and since when
/// (RFC 3339, UTC), if a session still holds the leader lock.
pub(crate) async fn current(pool: &Pool) -> Result<Option<(String, i64, String)>, ClusterError> {
    let c = pool
        .get()
        .await
        .map_err(|e| ClusterError::query("reach the database", e))?;
    let row = c
        .query_opt(
            "SELECT node, epoch, \
             to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
             EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND classid::int8 = $1 AND objid::int8 = $2 AND objsubid = 1) \
             FROM cluster_leader WHERE id = 1",
            &[&(LEADER_LOCK >> 32), &(LEADER_LOCK & 0xffff_ffff)],
        )
        .await
        .map_err(|e| ClusterError::query("read the cluster's leader", e))?;
    Ok(row.and_then(|r| {
        let node: Option<String> = r.get(0);
        let held: bool = r.get(3);
        let since: Option<String> = r.get(2);
        match (node, held) {
            (Some(node), true) => Some((node, r.get(1), since.unwrap_or_default())),
            _ => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    //! The election and the fence against a real PostgreSQL (`stratus_testkit`).
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use super::*;

    async fn until_some(l: &Leadership, limit: Duration) -> i64 {
        let t0 = Instant::now();
        loop {
            if let Some(e) = l.epoch() {
                return e;
            }
            assert!(t0.elapsed() < limit, "{} never led", l.node());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn psql(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.query(sql, &[]).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_leader_forgets_nodes_silent_longer_than_the_retention() {
        let url = stratus_testkit::Postgres::shared().database();
        let a = Election::new(&url, "a")
            .await
            .unwrap()
            .forget_nodes_after(Duration::from_secs(600));
        psql(
            &url,
            "INSERT INTO nodes (id, advertise, started_at, heartbeat_at, info) VALUES \
             ('long-gone', 'h:1', now() - interval '2 hours', now() - interval '1 hour', '{}'), \
             ('just-died', 'h:2', now() - interval '2 hours', now() - interval '1 minute', '{}')",
        )
        .await;
        let (la, (_stop, stop_rx)) = (a.leadership(), watch::channel(false));
        a.spawn(stop_rx);
        until_some(&la, Duration::from_secs(5)).await;
        let t0 = Instant::now();
        loop {
            let ids: Vec<String> = psql(&url, "SELECT id FROM nodes ORDER BY id")
                .await
                .iter()
                .map(|r| r.get(0))
                .collect();
            if ids == ["just-died"] {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "{ids:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_leads_and_a_deposed_leaders_firing_is_refused() {
        let url = stratus_testkit::Postgres::shared().database();
        let a = Election::new(&url, "a").await.unwrap();
        let (la, (stop_a, stop_a_rx)) = (a.leadership(), watch::channel(false));
        a.spawn(stop_a_rx);
        let e1 = until_some(&la, Duration::from_secs(5)).await;
        assert_eq!(e1, 1, "the first leader's epoch");
        let b = Election::new(&url, "b").await.unwrap();
        let (lb, (_stop_b, stop_b_rx)) = (b.leadership(), watch::channel(false));
        b.spawn(stop_b_rx);
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(lb.epoch(), None, "b follows while a leads");
        let pool = pg::connect(&url, 1).await.unwrap();
        assert_eq!(
            current(&pool).await.unwrap().map(|(n, e, _)| (n, e)),
            Some(("a".to_string(), 1))
        );

        let due = 1_780_000_000_000;
        assert_eq!(
            la.record_firing(e1, "f", "f-rule-1", due, "r1")
                .await
                .unwrap(),
            Firing::Recorded
        );
        assert_eq!(
            la.record_firing(e1, "f", "f-rule-1", due, "r2")
                .await
                .unwrap(),
            Firing::AlreadyFired,
            "a period is recorded once"
        );
        // Recorded but not yet sent: a new leader would re-send it as r1.
        let unsent = la.unsent(Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            unsent,
            [Unsent {
                function: "f".into(),
                rule: "f-rule-1".into(),
                due_ms: due,
                request_id: "r1".into()
            }]
        );
        la.mark_enqueued("f", "f-rule-1", due).await.unwrap();
        assert!(la.unsent(Duration::from_secs(60)).await.unwrap().is_empty());

        // a's session is ended behind its back (as a partition ends it): b takes
        // over while a has not noticed yet, and a's next firing is refused.
        psql(
            &url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'stratus-leader-election' AND pid IN \
             (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .await;
        let t0 = Instant::now();
        let e2 = until_some(&lb, Duration::from_secs(5)).await;
        eprintln!("b leads {:?} after a's session ended", t0.elapsed());
        assert_eq!(e2, 2);
        assert_eq!(
            la.record_firing(e1, "f", "f-rule-1", due + 60_000, "r3")
                .await
                .unwrap(),
            Firing::Deposed { current: 2 },
            "a deposed leader's write is refused"
        );
        assert_eq!(
            lb.record_firing(e2, "f", "f-rule-1", due, "r4")
                .await
                .unwrap(),
            Firing::AlreadyFired,
            "the new leader does not fire a period the old one fired"
        );
        assert_eq!(
            lb.record_firing(e2, "f", "f-rule-1", due + 60_000, "r5")
                .await
                .unwrap(),
            Firing::Recorded
        );
        let rows = psql(
            &url,
            "SELECT due_ms, epoch, node, request_id FROM schedule_firings ORDER BY due_ms",
        )
        .await;
        let rows: Vec<(i64, i64, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(
            rows,
            [
                (due, 1, "a".into(), "r1".into()),
                (due + 60_000, 2, "b".into(), "r5".into())
            ]
        );
        // a notices within a check and a timeout, and follows.
        let t0 = Instant::now();
        while la.epoch().is_some() {
            assert!(t0.elapsed() < CHECK + CHECK_TIMEOUT * 2, "a never noticed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            current(&pool).await.unwrap().map(|(n, e, _)| (n, e)),
            Some(("b".to_string(), 2))
        );
        let _ = stop_a.send(true);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_whose_database_stops_answering_steps_down_and_fires_nothing() {
        let url = stratus_testkit::Postgres::shared().database();
        let a = Election::new(&url, "a").await.unwrap();
        let la = a.leadership();
        let (_stop, rx) = watch::channel(false);
        a.spawn(rx);
        let e1 = until_some(&la, Duration::from_secs(5)).await;
        // Another session holds the leader's table locked: a's checks get no
        // answer, as when the database (or the way to it) hangs.
        let (blocker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        blocker
            .batch_execute("BEGIN; LOCK TABLE cluster_leader IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let t0 = Instant::now();
        while la.epoch().is_some() {
            assert!(
                t0.elapsed() < CHECK + CHECK_TIMEOUT + Duration::from_secs(1),
                "the leader did not step down"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("stepped down {:?} after its database hung", t0.elapsed());
        // Meanwhile a firing is not recorded, so not fired.
        let r = la
            .record_firing(e1, "f", "f-rule-1", 1_780_000_000_000, "r1")
            .await;
        assert!(matches!(r, Err(LeaderError::Timeout { .. })), "{r:?}");
        // The database answers again: a node leads under a new epoch, and the
        // period was never recorded.
        blocker.batch_execute("ROLLBACK").await.unwrap();
        let e2 = until_some(&la, Duration::from_secs(10)).await;
        assert!(e2 > e1, "{e2} after {e1}");
        let rows = psql(&url, "SELECT count(*) FROM schedule_firings").await;
        assert_eq!(rows[0].get::<_, i64>(0), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clean_stop_hands_over_at_the_next_poll() {
        let url = stratus_testkit::Postgres::shared().database();
        let a = Election::new(&url, "a").await.unwrap();
        let la = a.leadership();
        let (stop_a, rx) = watch::channel(false);
        let task = a.spawn(rx);
        until_some(&la, Duration::from_secs(5)).await;
        let b = Election::new(&url, "b").await.unwrap();
        let lb = b.leadership();
        let (_stop_b, rx) = watch::channel(false);
        b.spawn(rx);
        tokio::time::sleep(POLL * 2).await;
        let t0 = Instant::now();
        stop_a.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(la.epoch(), None);
        assert_eq!(until_some(&lb, Duration::from_secs(3)).await, 2);
        let took = t0.elapsed();
        eprintln!("clean hand-over took {took:?}");
    }
}
