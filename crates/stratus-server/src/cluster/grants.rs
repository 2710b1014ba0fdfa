//! Cluster-wide concurrency limits: slots of each pool leased from PostgreSQL in
//! batches, counted locally (design: `docs/decisions.md`, "Cluster-wide concurrency:
//! slot grants leased from PostgreSQL").
//!
//! Pools are the account's unreserved concurrency (`account`) and each function's
//! reserved concurrency (`function:{name}`). A node holds a grant per pool — `slots`
//! until `expires_at` — in `concurrency_grants`; a grant changes only under the lock
//! of its pool's row, and never past `limit − Σ unexpired grants of other nodes`.
//!
//! Admission ([`ConcurrencyLimiter::try_acquire`]) is a local count against the
//! node's granted slots and its own deadline: no database round trip. When the
//! share is used up, callers wait (bounded by [`GrantSettings::acquire_wait`], or one
//! request timeout past it while a request for the pool is in flight) for
//! one request made by a background agent on behalf of all of them; with nothing
//! granted they are throttled exactly as on a single node. The agent renews every
//! grant at a third of its lifetime and gives back slots unused since the last
//! renewal. A node stops admitting at its own deadline (set from its clock before it
//! asked, so earlier than the row's expiry), so a dead or cut-off node's share comes
//! back to the others one lifetime later by itself.
//!
//! Slots a node holds but does not use come back on demand, not only at its next
//! renewal: a request for more that goes short while other nodes hold slots sends
//! `pg_notify('stratus_grants', "{node}\t{pool}")` in its transaction; every agent
//! listens on its connection, and a holder with idle slots of that pool gives them
//! back at once (keeping only what runs). The short node's waiting callers are not
//! throttled yet: its agent asks again a few times ([`GrantSettings::reclaim_retries`],
//! [`GrantSettings::reclaim_retry_after`] apart) before they are. So one call through
//! any node runs whenever the pool has a free slot somewhere, within a few tens of
//! milliseconds, instead of being throttled until the holder's renewal.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use stratus_scheduler::{ConcurrencyLimiter, Gate, LimitPool, SlotFuture};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

/// The schema (also a refinery migration); applied idempotently at start.
const SCHEMA: &str = include_str!("../../migrations/postgres/V10__concurrency_grants.sql");

/// The channel on which a node short of a pool asks holders for idle slots.
const RECLAIM_CHANNEL: &str = "stratus_grants";

/// Advisory lock key serializing schema creation between nodes starting together.
const SCHEMA_LOCK: i64 = 0x5354_5241_5455_530a;

/// Tuning of the grants; the defaults suit a LAN cluster.
#[derive(Debug, Clone)]
pub struct GrantSettings {
    /// Lifetime of a grant: how long a dead node's slots stay taken. Renewed at a
    /// third of it.
    pub ttl: Duration,
    /// Longest a caller waits for a batch before it is throttled.
    pub acquire_wait: Duration,
    /// Longest one database request (connect included) may take.
    pub request_timeout: Duration,
    /// After a failed request, callers are throttled without waiting for this long
    /// (held grants still admit until their deadline).
    pub retry_after_failure: Duration,
    /// Most slots asked for beyond the callers waiting (the batch is `limit / 16`,
    /// at least 1, at most this).
    pub max_batch: u32,
    /// After a request found the pool full, callers are throttled without asking
    /// again for this long (bounds the requests a throttle storm makes).
    pub retry_when_full: Duration,
    /// After a request for more went short while other nodes held slots (they are
    /// told to give idle ones back), ask again this many times before throttling
    /// the waiting callers...
    pub reclaim_retries: u32,
    /// ... this long apart.
    pub reclaim_retry_after: Duration,
}

impl Default for GrantSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(6),
            acquire_wait: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            retry_after_failure: Duration::from_secs(1),
            max_batch: 16,
            retry_when_full: Duration::from_millis(20),
            reclaim_retries: 3,
            reclaim_retry_after: Duration::from_millis(30),
        }
    }
}

/// Why the grants could not start.
#[derive(Debug, thiserror::Error)]
pub enum GrantsError {
    /// The settings are unusable.
    #[error("cluster grant settings: {0}")]
    Settings(String),
    /// The PostgreSQL URL does not parse (the URL itself is not repeated: it may
    /// hold a password).
    #[error("cluster grants: invalid PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// PostgreSQL could not be reached or refused a statement.
    #[error("cluster grants: {what}: {source}")]
    Database {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// PostgreSQL did not answer in time.
    #[error("cluster grants: {0} timed out")]
    Timeout(&'static str),
}

/// What a node holds of one pool, for status pages and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Slots granted and not past the node's deadline.
    pub granted: u32,
    /// Slots taken by running invocations.
    pub in_use: u32,
}

/// Cluster-wide concurrency limits for one node; install it with
/// `scheduler.set_limiter(Some(grants))`.
#[derive(Debug)]
pub struct Grants {
    shared: Arc<Shared>,
    agent: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    node: String,
    settings: GrantSettings,
    table: Mutex<Table>,
    /// Wakes the agent: a pool needs more slots, or the node is closing.
    wake: Notify,
    /// Wakes waiting callers: a request finished.
    done: Notify,
    closing: AtomicBool,
}

#[derive(Debug, Default)]
struct Table {
    pools: HashMap<LimitPool, Local>,
    /// Until then, the database is taken to be unreachable: no waiting for it.
    down_until: Option<Instant>,
}

/// One pool as this node sees it.
#[derive(Debug, Default)]
struct Local {
    /// The cluster-wide limit as the configuration last said.
    limit: u32,
    granted: u32,
    in_use: u32,
    /// Most slots in use since the last renewal: what the renewal keeps.
    peak: u32,
    /// No admission from `granted` at or after this instant.
    deadline: Option<Instant>,
    /// Callers waiting for a slot.
    waiting: u32,
    /// Callers asked for more and the agent has not planned the request yet.
    pending: bool,
    /// Requests for more planned / finished (in order: one agent does them).
    issued: u64,
    completed: u64,
    /// The database has a row of ours for this pool.
    has_row: bool,
    /// Most slots asked for and not had since the last renewal (the demand the
    /// renewal keeps recorded, so holders above their fair share give back).
    unmet: u32,
    /// Until then the pool is taken to be full: throttle without asking.
    full_until: Option<Instant>,
    /// Another node went short: give idle slots back at once.
    reclaim: bool,
    /// Asking again for waiting callers at this instant (others were told to give
    /// idle slots back).
    retry_at: Option<Instant>,
    /// Times asked again since a request last had what it wanted.
    retries: u32,
}

impl Local {
    fn valid(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now < d)
    }

    fn try_take(&mut self, now: Instant) -> bool {
        if self.in_use < self.granted && self.valid(now) {
            self.in_use += 1;
            self.peak = self.peak.max(self.in_use);
            true
        } else {
            false
        }
    }

    fn idle(&self) -> bool {
        self.granted == 0 && self.in_use == 0 && self.waiting == 0 && !self.pending && !self.has_row
    }

    fn full(&self, now: Instant) -> bool {
        self.full_until.is_some_and(|d| now < d)
    }
}

impl Table {
    fn down(&self, now: Instant) -> bool {
        self.down_until.is_some_and(|d| now < d)
    }
}

/// The name of a pool's row.
fn pool_key(pool: &LimitPool) -> String {
    match pool {
        LimitPool::Account => "account".to_string(),
        LimitPool::Reserved(name) => format!("function:{name}"),
    }
}

/// Slots asked for beyond the waiting callers, minus one: small pools are asked for
/// one at a time so that no node strands much of them.
fn batch(limit: u32, max: u32) -> u32 {
    (limit / 16).clamp(1, max.max(1))
}

impl Grants {
    /// Connects to PostgreSQL at `pg_url`, creates the grant tables if they are
    /// missing, and starts the agent that requests and renews grants for node
    /// `node_id` (a node's id must be unique in the cluster and stable across its
    /// restarts: a restarted node takes over its old rows).
    pub async fn new(
        pg_url: &str,
        node_id: &str,
        settings: GrantSettings,
    ) -> Result<Arc<Grants>, GrantsError> {
        if settings.ttl < Duration::from_millis(300) {
            return Err(GrantsError::Settings(format!(
                "the grant lifetime must be at least 300 ms, not {:?}",
                settings.ttl
            )));
        }
        if settings.acquire_wait.is_zero() || settings.request_timeout.is_zero() {
            return Err(GrantsError::Settings(
                "acquire_wait and request_timeout must be above zero".to_string(),
            ));
        }
        let mut config = tokio_postgres::Config::from_str(pg_url).map_err(GrantsError::Url)?;
        config.connect_timeout(settings.request_timeout);
        let request_timeout = settings.request_timeout;
        let shared = Arc::new(Shared {
            node: node_id.to_string(),
            settings,
            table: Mutex::new(Table::default()),
            wake: Notify::new(),
            done: Notify::new(),
            closing: AtomicBool::new(false),
        });
        let mut conn = Conn::open(&config, request_timeout, shared.clone()).await?;
        let schema =
            format!("BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA}\nCOMMIT;");
        within(
            request_timeout,
            "creating the grant tables",
            conn.client.batch_execute(&schema),
        )
        .await?;
        // Prepared now, not inside the first grant request: five round trips more
        // would delay a new node's first callers (a reconnect prepares again).
        within(
            request_timeout,
            "preparing the grant statements",
            conn.stmts(),
        )
        .await?;
        let agent = Agent {
            shared: shared.clone(),
            config,
            conn: Some(conn),
            failing: false,
        };
        let agent = tokio::spawn(agent.run());
        Ok(Arc::new(Grants {
            shared,
            agent: Mutex::new(Some(agent)),
        }))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// What this node holds of `pool` now.
    pub fn held(&self, pool: &LimitPool) -> Held {
        let t = self.shared.table.lock();
        let now = Instant::now();
        t.pools
            .get(pool)
            .map(|l| Held {
                granted: if l.valid(now) { l.granted } else { 0 },
                in_use: l.in_use,
            })
            .unwrap_or_default()
    }

    /// Stops admitting from held grants and gives every one of them back (best
    /// effort, bounded by the request timeout); running invocations finish
    /// uncounted. For a clean shutdown; a node that just dies is covered by expiry.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        {
            let mut t = self.shared.table.lock();
            for l in t.pools.values_mut() {
                l.granted = 0;
                l.deadline = None;
            }
        }
        self.shared.wake.notify_one();
        self.shared.done.notify_waiters();
        let agent = self.agent.lock().take();
        if let Some(agent) = agent {
            let wait = self.shared.settings.request_timeout * 2;
            if tokio::time::timeout(wait, agent).await.is_err() {
                tracing::warn!("cluster grants: giving the grants back timed out");
            }
        }
    }
}

impl Drop for Grants {
    /// Stops the agent without giving anything back: the rows expire by themselves.
    fn drop(&mut self) {
        if let Some(agent) = self.agent.lock().take() {
            agent.abort();
        }
    }
}

impl ConcurrencyLimiter for Grants {
    fn try_acquire(&self, pool: &LimitPool, limit: u32, now: Instant) -> Gate {
        let mut t = self.shared.table.lock();
        let mut full = false;
        if let Some(l) = t.pools.get_mut(pool) {
            l.limit = limit;
            if l.try_take(now) {
                return Gate::Admitted;
            }
            full = l.full(now);
        }
        if full || t.down(now) || self.shared.closing.load(Ordering::Relaxed) {
            Gate::Exhausted
        } else {
            Gate::Ask
        }
    }

    fn acquire(&self, pool: LimitPool, limit: u32) -> SlotFuture {
        Box::pin(wait_for_slot(self.shared.clone(), pool, limit))
    }

    fn release(&self, pool: &LimitPool) {
        if let Some(l) = self.shared.table.lock().pools.get_mut(pool) {
            l.in_use = l.in_use.saturating_sub(1);
        }
    }
}

/// Counts a caller as waiting on a pool until dropped (also when the caller goes
/// away mid-wait).
struct Waiting<'a> {
    shared: &'a Shared,
    pool: &'a LimitPool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.shared.table.lock().pools.get_mut(self.pool) {
            l.waiting = l.waiting.saturating_sub(1);
        }
    }
}

/// Takes a slot of `pool`, asking the agent for more when none is held; gives up
/// when the request that covers this caller found none, the database is down, or
/// the wait runs out ([`GrantSettings::acquire_wait`], plus at most one
/// [`GrantSettings::request_timeout`] when a request for the pool is in flight
/// then).
async fn wait_for_slot(shared: Arc<Shared>, pool: LimitPool, limit: u32) -> bool {
    let mut give_up = tokio::time::Instant::now() + shared.settings.acquire_wait;
    let mut extended = false;
    let mut need = {
        let mut t = shared.table.lock();
        let now = Instant::now();
        if t.down(now) || shared.closing.load(Ordering::Relaxed) {
            return false;
        }
        let l = t.pools.entry(pool.clone()).or_default();
        l.limit = limit;
        if l.try_take(now) {
            return true;
        }
        if l.full(now) {
            return false;
        }
        l.waiting += 1;
        l.pending = true;
        // The next request the agent plans for this pool counts this caller.
        l.issued + 1
    };
    let _waiting = Waiting {
        shared: &shared,
        pool: &pool,
    };
    shared.wake.notify_one();
    loop {
        let notified = shared.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut t = shared.table.lock();
            let now = Instant::now();
            let down = t.down(now);
            let Some(l) = t.pools.get_mut(&pool) else {
                return false;
            };
            if l.try_take(now) {
                return true;
            }
            if down || shared.closing.load(Ordering::Relaxed) {
                return false;
            }
            if l.completed >= need {
                if l.retry_at.is_none() {
                    return false;
                }
                // Covered by the request asking again.
                need = l.issued + 1;
            }
        }
        if tokio::time::timeout_at(give_up, notified).await.is_err() {
            // The wait ran out. While a request for this pool is on its way, its
            // answer is at most one request timeout off (the agent bounds it), and
            // callers behind it are covered by the next one the agent plans at
            // once: wait for that, once, rather than throttle callers of a pool
            // that may have plenty of room merely because the database is slow
            // (a burst on a node that holds nothing yet needs two requests).
            let in_flight = shared
                .table
                .lock()
                .pools
                .get(&pool)
                .is_some_and(|l| l.issued > l.completed);
            if extended || !in_flight {
                return false;
            }
            extended = true;
            give_up = tokio::time::Instant::now() + shared.settings.request_timeout;
        }
    }
}

/// One database request the agent makes.
#[derive(Debug)]
struct Job {
    pool: LimitPool,
    limit: u32,
    /// Slots to hold, if the pool has them.
    wanted: u32,
    /// Slots to hold regardless (already admitted against, or in use).
    floor: u32,
    /// Most slots the node may admit against afterwards.
    local_max: u32,
    /// The demand to record.
    demand: u32,
    /// For a request for more: its number (see [`Local::issued`]).
    issued: Option<u64>,
}

impl Shared {
    /// The requests due: every pool callers wait on, and on `renew` every pool held.
    fn plan(&self, renew: bool) -> Vec<Job> {
        let mut t = self.table.lock();
        let now = Instant::now();
        let max_batch = self.settings.max_batch;
        let mut jobs = Vec::new();
        for (pool, l) in t.pools.iter_mut() {
            let valid = l.valid(now);
            if l.retry_at.is_some_and(|at| at <= now) {
                l.retry_at = None;
                l.pending |= l.waiting > 0;
            }
            if l.pending {
                l.pending = false;
                l.issued += 1;
                // In use, and (while valid) admissible during the request: covered.
                let floor = l.in_use.max(if valid { l.granted } else { 0 });
                let wanted = floor
                    .max(l.in_use.saturating_add(l.waiting))
                    .saturating_add(batch(l.limit, max_batch) - 1);
                jobs.push(Job {
                    pool: pool.clone(),
                    limit: l.limit,
                    wanted,
                    floor,
                    local_max: wanted,
                    demand: wanted,
                    issued: Some(l.issued),
                });
            } else if (renew || l.reclaim) && (l.granted > 0 || l.in_use > 0 || l.has_row) {
                let reclaim = std::mem::take(&mut l.reclaim);
                // Keep what was used since the last renewal (only what runs when
                // another node is short); give the rest back. Shrink locally
                // first, so nothing is admitted against slots the database is
                // about to hand to others.
                let keep = if valid && !reclaim {
                    l.granted.min(l.peak.max(l.in_use))
                } else {
                    l.in_use
                };
                l.granted = l.granted.min(keep);
                l.peak = l.in_use;
                let floor = keep.max(l.in_use);
                jobs.push(Job {
                    pool: pool.clone(),
                    limit: l.limit,
                    wanted: floor,
                    floor,
                    local_max: keep,
                    demand: floor.max(std::mem::take(&mut l.unmet)),
                    issued: None,
                });
            }
        }
        t.pools.retain(|_, l| !l.idle());
        jobs
    }

    /// Records a request's result: `slots` held in the database from `sent` (when
    /// the request left, so the deadline falls before the row's expiry by the
    /// database clock), of which the node admits against at most `cap` (its fair
    /// share when other nodes go short).
    fn granted(&self, job: &Job, g: Granted, sent: Instant) {
        let mut t = self.table.lock();
        t.down_until = None;
        let ttl = self.settings.ttl;
        let now = Instant::now();
        let l = t.pools.entry(job.pool.clone()).or_default();
        l.granted = g.slots.min(job.local_max).min(g.cap);
        l.has_row = g.slots > 0 || job.demand > 0;
        l.deadline = (g.slots > 0).then(|| sent + ttl - ttl / 20);
        if let Some(n) = job.issued {
            l.completed = l.completed.max(n);
            if l.granted < job.wanted {
                l.unmet = l.unmet.max(job.wanted);
            }
            if l.granted >= job.wanted || l.waiting == 0 {
                l.retries = 0;
            } else if g.others_hold
                && l.granted <= l.in_use
                && l.retries < self.settings.reclaim_retries
            {
                // The holders were told to give idle slots back: ask again soon.
                l.retries += 1;
                l.retry_at = Some(now + self.settings.reclaim_retry_after);
                return;
            }
            if l.granted <= l.in_use {
                l.full_until = Some(now + self.settings.retry_when_full);
            }
        }
    }

    /// Another node went short of `payload`'s pool (`"{node}\t{pool}"`): if this
    /// node holds idle slots of it, the agent gives them back now.
    fn reclaim_asked(&self, payload: &str) {
        let Some((node, key)) = payload.split_once('\t') else {
            return;
        };
        if node == self.node {
            return;
        }
        let mut t = self.table.lock();
        let idle = t
            .pools
            .iter_mut()
            .find(|(pool, _)| pool_key(pool) == key)
            .map(|(_, l)| l)
            .filter(|l| l.granted > l.in_use);
        if let Some(l) = idle {
            l.reclaim = true;
            drop(t);
            self.wake.notify_one();
        }
    }

    /// The earliest instant a pool asks again for its waiting callers.
    fn next_retry(&self) -> Option<Instant> {
        self.table
            .lock()
            .pools
            .values()
            .filter_map(|l| l.retry_at)
            .min()
    }

    /// Records failed requests: their callers are throttled, and callers are
    /// throttled without waiting for a while. Held grants stay until their deadline.
    fn failed(&self, jobs: &[Job]) {
        let mut t = self.table.lock();
        t.down_until = Some(Instant::now() + self.settings.retry_after_failure);
        for job in jobs {
            if let Some(l) = t.pools.get_mut(&job.pool) {
                if let Some(n) = job.issued {
                    l.completed = l.completed.max(n);
                }
                l.pending = false;
            }
        }
    }
}

/// The agent's connection with its prepared statements.
struct Conn {
    client: Client,
    task: JoinHandle<()>,
    stmts: Option<Stmts>,
}

/// The statements of a grant request, prepared once per connection.
#[derive(Clone)]
struct Stmts {
    lock_pool: Statement,
    others: Statement,
    upsert: Statement,
    delete: Statement,
    reclaim: Statement,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Conn {
    /// Connects and listens for other nodes' requests for idle slots (handed to
    /// `shared`).
    async fn open(
        config: &tokio_postgres::Config,
        limit: Duration,
        shared: Arc<Shared>,
    ) -> Result<Conn, GrantsError> {
        let (client, mut connection) =
            within(limit, "connecting to PostgreSQL", config.connect(NoTls)).await?;
        let task = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => shared.reclaim_asked(n.payload()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "cluster grants: connection ended");
                        return;
                    }
                    None => return,
                }
            }
        });
        let conn = Conn {
            client,
            task,
            stmts: None,
        };
        within(
            limit,
            "listening for requests for idle slots",
            conn.client
                .batch_execute(&format!("LISTEN {RECLAIM_CHANNEL}")),
        )
        .await?;
        Ok(conn)
    }

    async fn stmts(&mut self) -> Result<Stmts, tokio_postgres::Error> {
        if let Some(s) = &self.stmts {
            return Ok(s.clone());
        }
        let c = &self.client;
        let s = Stmts {
            // Taking the pool row's lock first (an upsert locks the row until commit)
            // means the sum below is read after every earlier change committed.
            lock_pool: c
                .prepare(
                    "INSERT INTO concurrency_pools (pool, slot_limit) VALUES ($1, $2) \
                     ON CONFLICT (pool) DO UPDATE SET slot_limit = EXCLUDED.slot_limit",
                )
                .await?,
            // The other nodes' slots, how many of them go short, how many take part.
            // Expired rows are dropped on the way (their nodes are dead or cut off
            // and no longer admit against them).
            others: c
                .prepare(
                    "WITH gone AS (DELETE FROM concurrency_grants \
                       WHERE pool = $1 AND node <> $2 AND expires_at <= now()) \
                     SELECT COALESCE(SUM(slots), 0)::bigint, \
                       COUNT(*) FILTER (WHERE wanted > slots), \
                       COUNT(*) FILTER (WHERE slots > 0 OR wanted > 0) \
                     FROM concurrency_grants \
                     WHERE pool = $1 AND node <> $2 AND expires_at > now()",
                )
                .await?,
            upsert: c
                .prepare(
                    "INSERT INTO concurrency_grants (pool, node, slots, wanted, expires_at) \
                     VALUES ($1, $2, $3, $4, now() + $5::float8 * interval '1 second') \
                     ON CONFLICT (pool, node) DO UPDATE SET slots = EXCLUDED.slots, \
                       wanted = EXCLUDED.wanted, expires_at = EXCLUDED.expires_at",
                )
                .await?,
            delete: c
                .prepare("DELETE FROM concurrency_grants WHERE pool = $1 AND node = $2")
                .await?,
            reclaim: c
                .prepare(&format!("SELECT pg_notify('{RECLAIM_CHANNEL}', $1)"))
                .await?,
        };
        self.stmts = Some(s.clone());
        Ok(s)
    }

    /// Sets this node's grant of one pool: `wanted` slots if the pool has them and
    /// (while other nodes go short) no more than a fair share, never fewer than
    /// `floor`; records the node's demand.
    async fn grant(
        &mut self,
        node: &str,
        job: &Job,
        ttl: Duration,
    ) -> Result<Granted, tokio_postgres::Error> {
        let s = self.stmts().await?;
        let key = pool_key(&job.pool);
        let tx = self.client.transaction().await?;
        tx.execute(&s.lock_pool, &[&key, &to_i32(job.limit)])
            .await?;
        let row = tx.query_one(&s.others, &[&key, &node]).await?;
        let (held_by_others, short, taking_part): (i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2));
        let limit = i64::from(job.limit);
        let available = (limit - held_by_others).max(0);
        // Nodes going short get a fair share: the others' grants shrink to it.
        let cap = if short > 0 {
            (limit + taking_part) / (taking_part + 1)
        } else {
            i64::MAX
        };
        let slots = i64::from(job.wanted)
            .min(available)
            .min(cap)
            .max(i64::from(job.floor));
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        if job.issued.is_some() && slots < job.wanted && held_by_others > 0 {
            // Sent at commit: holders with idle slots give them back.
            tx.execute(&s.reclaim, &[&format!("{node}\t{key}")]).await?;
        }
        if slots == 0 && job.demand == 0 {
            tx.execute(&s.delete, &[&key, &node]).await?;
        } else {
            let demand = job.demand.max(slots);
            tx.execute(
                &s.upsert,
                &[
                    &key,
                    &node,
                    &to_i32(slots),
                    &to_i32(demand),
                    &ttl.as_secs_f64(),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Granted {
            slots,
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            others_hold: held_by_others > 0,
        })
    }
}

/// What a grant request got.
#[derive(Debug, Clone, Copy)]
struct Granted {
    /// Slots held in the database.
    slots: u32,
    /// The node's fair share while others go short (`u32::MAX` otherwise).
    cap: u32,
    /// Other nodes held slots of the pool (those short of it were told).
    others_hold: bool,
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Runs `f` with a time limit, naming `what` in the error.
async fn within<T>(
    limit: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, GrantsError> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(GrantsError::Database { what, source }),
        Err(_) => Err(GrantsError::Timeout(what)),
    }
}

/// The background task that talks to PostgreSQL for this node. It owns the only
/// connection; a request that fails or times out drops it (a request cut off
/// mid-transaction must not leave the connection inside one).
struct Agent {
    shared: Arc<Shared>,
    config: tokio_postgres::Config,
    conn: Option<Conn>,
    /// The last request failed (for logging the change once).
    failing: bool,
}

impl Agent {
    async fn run(mut self) {
        let every = self.shared.settings.ttl / 3;
        let mut next_renew = tokio::time::Instant::now() + every;
        loop {
            let retry = self
                .shared
                .next_retry()
                .map(tokio::time::Instant::from_std)
                .unwrap_or(next_renew);
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(next_renew.min(retry)) => {}
            }
            if self.shared.closing.load(Ordering::SeqCst) {
                self.give_back().await;
                return;
            }
            let now = tokio::time::Instant::now();
            let renew = now >= next_renew;
            if renew {
                next_renew = now + every;
            }
            let jobs = self.shared.plan(renew);
            self.run_jobs(&jobs).await;
            self.shared.done.notify_waiters();
        }
    }

    async fn run_jobs(&mut self, jobs: &[Job]) {
        let limit = self.shared.settings.request_timeout;
        let ttl = self.shared.settings.ttl;
        let shared = self.shared.clone();
        for (i, job) in jobs.iter().enumerate() {
            let sent = Instant::now();
            let result = match self.connection().await {
                Ok(conn) => {
                    within(
                        limit,
                        "requesting a grant",
                        conn.grant(&shared.node, job, ttl),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(granted) => {
                    self.shared.granted(job, granted, sent);
                    if std::mem::take(&mut self.failing) {
                        tracing::info!("cluster grants: PostgreSQL reachable again");
                    }
                }
                Err(e) => {
                    self.conn = None;
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::warn!(error = %e, "cluster grants: cannot reach PostgreSQL; admitting from held grants until they expire");
                    }
                    // The rest would fail the same way: fail them now.
                    self.shared.failed(&jobs[i..]);
                    return;
                }
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut Conn, GrantsError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let limit = self.shared.settings.request_timeout;
            let mut conn = Conn::open(&self.config, limit, self.shared.clone()).await?;
            within(limit, "preparing the grant statements", conn.stmts()).await?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(GrantsError::Timeout("connecting to PostgreSQL")),
        }
    }

    /// Deletes every row of this node.
    async fn give_back(&mut self) {
        let limit = self.shared.settings.request_timeout;
        let node = self.shared.node.clone();
        let result = match self.connection().await {
            Ok(conn) => {
                within(
                    limit,
                    "giving grants back",
                    conn.client
                        .execute("DELETE FROM concurrency_grants WHERE node = $1", &[&node]),
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cluster grants: could not give the grants back; they expire by themselves");
        }
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.shared.node)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pools_are_asked_for_one_slot_at_a_time() {
        assert_eq!(batch(10, 16), 1);
        assert_eq!(batch(0, 16), 1);
        assert_eq!(batch(100, 16), 6);
        assert_eq!(batch(900, 16), 16);
        assert_eq!(batch(900, 0), 1);
    }

    #[test]
    fn a_grant_admits_only_before_its_deadline_and_up_to_its_slots() {
        let t0 = Instant::now();
        let mut l = Local {
            granted: 2,
            deadline: Some(t0 + Duration::from_secs(1)),
            ..Local::default()
        };
        assert!(l.try_take(t0));
        assert!(l.try_take(t0));
        assert!(!l.try_take(t0), "only two slots granted");
        l.in_use = 0;
        assert!(
            !l.try_take(t0 + Duration::from_secs(1)),
            "past the deadline"
        );
        assert_eq!(l.peak, 2);
    }

    #[test]
    fn pool_rows_are_named_by_pool() {
        assert_eq!(pool_key(&LimitPool::Account), "account");
        assert_eq!(
            pool_key(&LimitPool::Reserved(Arc::from("orders-dev-api"))),
            "function:orders-dev-api"
        );
    }
}
