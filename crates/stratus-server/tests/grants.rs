//! Cluster-wide concurrency limits (`cluster::grants`) against a real PostgreSQL:
//! several `Grants` ("nodes") on one database never hold more than a pool's limit,
//! a node that dies gives its slots back by expiry, a node cut off from PostgreSQL
//! admits from what it holds until its deadline and then throttles, and two
//! in-process servers with the limiter installed throttle a reserved function
//! across both.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_scheduler::{ConcurrencyLimiter, Gate, LimitPool};
use stratus_server::cluster::grants::{GrantSettings, Grants};
use stratus_testkit::Postgres;

fn quick() -> GrantSettings {
    GrantSettings {
        ttl: Duration::from_secs(2),
        acquire_wait: Duration::from_millis(500),
        request_timeout: Duration::from_millis(800),
        retry_after_failure: Duration::from_millis(300),
        ..GrantSettings::default()
    }
}

fn pool(name: &str) -> LimitPool {
    LimitPool::Reserved(Arc::from(name))
}

/// Takes a slot the way the scheduler does: from what the node holds, else by
/// asking. `true` when admitted.
async fn take(g: &Grants, p: &LimitPool, limit: u32) -> bool {
    match g.try_acquire(p, limit, Instant::now()) {
        Gate::Admitted => true,
        Gate::Exhausted => false,
        Gate::Ask => g.acquire(p.clone(), limit).await,
    }
}

/// Slots of `pool` unexpired in the database, summed over nodes.
async fn db_held(client: &tokio_postgres::Client, pool: &str) -> i64 {
    client
        .query_one(
            "SELECT COALESCE(SUM(slots), 0)::bigint FROM concurrency_grants \
             WHERE pool = $1 AND expires_at > now()",
            &[&pool],
        )
        .await
        .unwrap()
        .get(0)
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_and_fifty_callers_never_run_more_than_the_reservation() {
    const LIMIT: u32 = 10;
    let url = Postgres::shared().database();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(
            Grants::new(&url, &format!("node-{i}"), quick())
                .await
                .unwrap(),
        );
    }
    let p = pool("reserved-fn");
    let running = Arc::new(AtomicU32::new(0));
    let max_running = Arc::new(AtomicU32::new(0));
    let admitted: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let throttled = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Sampler: the local counts and the database, all along.
    let sampler = {
        let (nodes, p, stop) = (nodes.clone(), p.clone(), stop.clone());
        let client = connect(&url).await;
        tokio::spawn(async move {
            let (mut samples, mut max_local, mut max_granted, mut max_db) = (0, 0, 0, 0);
            while !stop.load(Ordering::Relaxed) {
                let held: Vec<_> = nodes.iter().map(|g| g.held(&p)).collect();
                let in_use: u32 = held.iter().map(|h| h.in_use).sum();
                let granted: u32 = held.iter().map(|h| h.granted).sum();
                let db = db_held(&client, "function:reserved-fn").await;
                assert!(
                    in_use <= LIMIT,
                    "{in_use} slots in use over 3 nodes: {held:?}"
                );
                assert!(
                    granted <= LIMIT,
                    "{granted} slots granted over 3 nodes: {held:?}"
                );
                assert!(db <= i64::from(LIMIT), "{db} slots granted in the database");
                max_local = max_local.max(in_use);
                max_granted = max_granted.max(granted);
                max_db = max_db.max(db);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (samples, max_local, max_granted, max_db)
        })
    };

    let deadline = Instant::now() + Duration::from_secs(4);
    let mut callers = Vec::new();
    for c in 0..50usize {
        let node = c % 3;
        let g = nodes[node].clone();
        let (p, running, max_running, admitted, throttled) = (
            p.clone(),
            running.clone(),
            max_running.clone(),
            admitted.clone(),
            throttled.clone(),
        );
        callers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if take(&g, &p, LIMIT).await {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_running.fetch_max(now, Ordering::SeqCst);
                    admitted[node].fetch_add(1, Ordering::Relaxed);
                    // An invocation of 5–25 ms.
                    tokio::time::sleep(Duration::from_millis(5 + (c as u64 % 5) * 5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    g.release(&p);
                } else {
                    throttled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (samples, max_local, max_granted, max_db) = sampler.await.unwrap();
    let admitted: Vec<u32> = admitted.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let throttled = throttled.load(Ordering::Relaxed);
    let max_running = max_running.load(Ordering::SeqCst);
    println!(
        "admitted per node {admitted:?}, throttled {throttled}, most running at once \
         {max_running}; {samples} samples: most in use {max_local}, granted {max_granted}, \
         in the database {max_db}"
    );
    assert!(max_running <= LIMIT, "{max_running} ran at once");
    assert!(samples > 50, "the sampler ran only {samples} times");
    assert!(
        throttled > 0,
        "50 callers on a reservation of 10 were never throttled"
    );
    // Slots are reused (far more admissions than the limit), the limit is reached,
    // and every node gets a share over the run.
    assert!(admitted.iter().sum::<u32>() > 10 * LIMIT, "{admitted:?}");
    assert!(
        max_running >= LIMIT / 2,
        "at most {max_running} ran at once"
    );
    // Fair shares: a node that goes short gets its share back from the others
    // within a renewal or two, so none is starved for the run.
    let total: u32 = admitted.iter().sum();
    assert!(admitted.iter().all(|&a| a > total / 10), "{admitted:?}");
    for g in &nodes {
        assert_eq!(g.held(&p).in_use, 0);
        g.shutdown().await;
    }
    let client = connect(&url).await;
    assert_eq!(
        db_held(&client, "function:reserved-fn").await,
        0,
        "shutdown gives back"
    );
}

/// Slots one node holds but no longer uses come back as soon as another node is
/// short of them, not at the holder's next renewal: a call through the other node
/// runs rather than being throttled while nothing runs anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slots_held_by_one_node_serve_a_call_through_another_at_once() {
    const LIMIT: u32 = 3;
    let url = Postgres::shared().database();
    // A renewal far away: only the request for idle slots can free them in time.
    let settings = GrantSettings {
        ttl: Duration::from_secs(30),
        ..quick()
    };
    let a = Grants::new(&url, "holder", settings.clone()).await.unwrap();
    let b = Grants::new(&url, "short", settings).await.unwrap();
    let p = pool("idle-held");
    for _ in 0..LIMIT {
        assert!(take(&a, &p, LIMIT).await);
    }
    for _ in 0..LIMIT {
        a.release(&p);
    }
    assert_eq!(a.held(&p).granted, LIMIT, "the holder keeps its batch");
    let asked = Instant::now();
    assert!(
        take(&b, &p, LIMIT).await,
        "a call through the other node was throttled while nothing ran"
    );
    println!(
        "idle slots handed over to another node in {:?}",
        asked.elapsed()
    );
    assert_eq!(a.held(&p).granted, 0, "the holder gave its idle slots back");
    // Still never more than the limit between them: the holder asks again.
    b.release(&p);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_slots_come_back_after_the_grant_lifetime() {
    let url = Postgres::shared().database();
    let settings = quick();
    let ttl = settings.ttl;
    let a = Grants::new(&url, "a", settings.clone()).await.unwrap();
    let b = Grants::new(&url, "b", settings).await.unwrap();
    let p = pool("f");
    for _ in 0..4 {
        assert!(take(&a, &p, 4).await);
    }
    // The last grant (or renewal) of `a` was just made.
    let died = Instant::now();
    assert!(!take(&b, &p, 4).await, "a holds the whole pool");
    // `a` dies: no release, no renewal.
    drop(a);
    let client = connect(&url).await;
    assert_eq!(db_held(&client, "function:f").await, 4);
    let mut refused = 0;
    loop {
        if take(&b, &p, 4).await {
            break;
        }
        refused += 1;
        assert!(
            died.elapsed() < ttl * 3,
            "the dead node's slots never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = died.elapsed();
    println!("the dead node's slots came back after {back:?} (lifetime {ttl:?})");
    assert!(refused > 0);
    // Not before the grant could have expired (it was made before `died`).
    assert!(
        back >= ttl - Duration::from_millis(400),
        "back after {back:?}"
    );
    for _ in 0..3 {
        assert!(take(&b, &p, 4).await, "b gets the whole pool");
    }
    assert!(!take(&b, &p, 4).await, "and no more");
    assert_eq!(b.held(&p).in_use, 4);
}

#[tokio::test]
async fn with_postgres_gone_held_grants_admit_until_their_deadline_then_throttle() {
    let pg = Postgres::start();
    let url = pg.database();
    let settings = GrantSettings {
        ttl: Duration::from_secs(3),
        ..quick()
    };
    let ttl = settings.ttl;
    let g = Grants::new(&url, "alone", settings).await.unwrap();
    let p = LimitPool::Account;
    let asked = Instant::now();
    for _ in 0..3 {
        assert!(take(&g, &p, 100).await);
    }
    pg.stop();
    let stopped = Instant::now();
    // One slot turned over and over: admitted from the held grant while it lasts.
    let mut turns = 0;
    let refused_at = loop {
        g.release(&p);
        match g.try_acquire(&p, 100, Instant::now()) {
            Gate::Admitted => turns += 1,
            gate => {
                assert_ne!(gate, Gate::Admitted);
                break Instant::now();
            }
        }
        assert!(
            stopped.elapsed() < ttl * 2,
            "still admitting long after the deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lasted = refused_at.duration_since(asked);
    println!("admitted {turns} times with PostgreSQL down; refused {lasted:?} after the grant was asked for (lifetime {ttl:?})");
    assert!(turns > 5, "the held grant admitted only {turns} times");
    assert!(
        lasted <= ttl + Duration::from_millis(100),
        "refused only after {lasted:?}"
    );
    // Asking goes nowhere, quickly, and keeps failing: throttled, no panic.
    for _ in 0..3 {
        let t = Instant::now();
        assert!(!take(&g, &p, 100).await);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(g.held(&p).granted, 0);
    assert_eq!(g.held(&p).in_use, 2);
    g.release(&p);
    g.release(&p);
    g.shutdown().await;
}

/// An in-process server (the router without a socket) with the limiter installed.
struct Node {
    server: stratus_server::RunningServer,
    app: axum::Router,
    grants: Arc<Grants>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(url: &str, id: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let cfg = stratus_server::ServerConfig::new(
            dir.path().join("data"),
            "127.0.0.1:0".parse().unwrap(),
        );
        let server = stratus_server::start(cfg).await.unwrap();
        let grants = Grants::new(url, id, quick()).await.unwrap();
        server
            .scheduler()
            .set_limiter(Some(grants.clone() as Arc<dyn ConcurrencyLimiter>));
        let app = server.router();
        Node {
            server,
            app,
            grants,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// A Node.js function that takes `ms` per call, with reserved concurrency.
    async fn create_slow_function(&self, name: &str, ms: u32, reserved: u32) {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.js"),
            format!("exports.handler = async () => {{ await new Promise(r => setTimeout(r, {ms})); return 'done'; }};\n"),
        )
        .unwrap();
        let zip = stratus_package::zip_dir(dir.path()).unwrap();
        let (status, body) = self
            .call(
                "POST",
                "/2015-03-31/functions",
                serde_json::json!({
                    "FunctionName": name, "Runtime": "nodejs20.x", "Handler": "index.handler",
                    "Role": "arn:aws:iam::000000000000:role/r", "Timeout": 30,
                    "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .call(
                "PUT",
                &format!("/2017-10-31/functions/{name}/concurrency"),
                serde_json::json!({ "ReservedConcurrentExecutions": reserved }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_with_the_limiter_share_one_reservation() {
    let url = Postgres::shared().database();
    let nodes = [Node::start(&url, "s1").await, Node::start(&url, "s2").await];
    for n in &nodes {
        // Reserved 3 on each node's configuration: alone, each would run 3.
        n.create_slow_function("slow", 1500, 3).await;
    }
    let nodes = Arc::new(nodes);
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                nodes[i % 2]
                    .call(
                        "POST",
                        "/2015-03-31/functions/slow/invocations",
                        serde_json::json!({}),
                    )
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut throttled = 0;
    for c in calls {
        let (status, body) = c.await.unwrap();
        match status {
            200 => {
                assert_eq!(body, "done");
                ok += 1;
            }
            429 => {
                assert_eq!(
                    body["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded",
                    "{body}"
                );
                assert_eq!(body["message"], "Rate Exceeded.", "{body}");
                throttled += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    println!("10 concurrent calls over two nodes, reserved 3: {ok} ran, {throttled} throttled");
    assert!(
        (1..=3).contains(&ok),
        "{ok} ran at once with a reservation of 3"
    );
    assert_eq!(ok + throttled, 10);
    let counted: u64 = nodes
        .iter()
        .map(|n| n.server.scheduler().metrics("slow").throttles)
        .sum();
    assert_eq!(
        counted, throttled,
        "throttles are counted where they happen"
    );
    // Everything ran to its end: the slots are back, and the pool serves again
    // from either node.
    for n in nodes.iter() {
        assert_eq!(n.grants.held(&pool("slow")).in_use, 0);
        let (status, body) = n
            .call(
                "POST",
                "/2015-03-31/functions/slow/invocations",
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let nodes = Arc::into_inner(nodes).unwrap();
    for n in nodes {
        n.grants.shutdown().await;
        n.server.shutdown().await;
    }
}

/// A burst on a node that holds nothing yet, arriving while its first grant
/// request is in flight on a slow database (every grant write takes 300 ms, as on
/// an overloaded machine): the first request covers the first caller and a batch,
/// the rest need a second request that ends past `acquire_wait` (500 ms) of their
/// arrival. The account pool is far below its limit, so every caller must be
/// admitted, none throttled for the database's slowness.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_a_new_node_is_not_throttled_by_a_slow_database() {
    const LIMIT: u32 = 1000;
    let url = Postgres::shared().database();
    let settings = GrantSettings {
        request_timeout: Duration::from_secs(2),
        ..quick()
    };
    let g = Grants::new(&url, "new-node", settings).await.unwrap();
    let client = connect(&url).await;
    client
        .batch_execute(
            "CREATE FUNCTION slow_grant() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$; \
             CREATE TRIGGER slow_grant BEFORE INSERT ON concurrency_grants \
             FOR EACH ROW EXECUTE FUNCTION slow_grant();",
        )
        .await
        .unwrap();
    let p = LimitPool::Account;
    let t0 = Instant::now();
    let first = {
        let g = g.clone();
        let p = p.clone();
        tokio::spawn(async move { take(&g, &p, LIMIT).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let burst: Vec<_> = (0..63)
        .map(|_| {
            let g = g.clone();
            let p = p.clone();
            tokio::spawn(async move { take(&g, &p, LIMIT).await })
        })
        .collect();
    let mut admitted = u32::from(first.await.unwrap());
    for h in burst {
        admitted += u32::from(h.await.unwrap());
    }
    eprintln!(
        "64 callers on a new node, 300 ms per grant write: {admitted} admitted after {:?}",
        t0.elapsed()
    );
    assert_eq!(
        admitted, 64,
        "callers throttled with the pool at {admitted}/{LIMIT}"
    );
    // None was released: the node holds a grant for every one of them.
    assert!(
        g.held(&p).in_use == 64 && g.held(&p).granted >= 64,
        "{:?}",
        g.held(&p)
    );
    assert!(db_held(&client, "account").await >= 64);
}
