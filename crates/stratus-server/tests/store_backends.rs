//! The store boundaries' behaviour, the same for both backends: each behaviour is
//! one function, run against the embedded SQLite store and against the cluster's
//! PostgreSQL store (a real server from `stratus-testkit`, a database per test).
//! Then what only a cluster has: two nodes publishing versions at once, change
//! notifications on `LISTEN`, shared data keys, and an unreachable database.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use stratus_manifest::model::{Event, ScheduleEvent};
use stratus_seal::{MasterKey, Sealer};
use stratus_server::cluster::pg::{Change, ChangeKind, CHANGES_CHANNEL};
use stratus_server::model::{AliasConfiguration, EventInvokeConfig, FunctionConfiguration};
use stratus_server::store::keys::{KeyStore, SqliteKeyStore, StoredKey};
use stratus_server::store::{PgDatabase, StoreError, StoredFunction, StoredVersion, Stores};
use stratus_testkit::Postgres;

/// One backend under test, with a way to run raw SQL against its tables.
struct Backend {
    stores: Stores,
    keys: Arc<dyn KeyStore>,
    raw: Raw,
}

enum Raw {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::ephemeral().unwrap();
        Self {
            stores: Stores::sqlite(dir.path(), sealer.clone()).unwrap(),
            keys: Arc::new(SqliteKeyStore::open(dir.path(), sealer).unwrap()),
            raw: Raw::Sqlite(dir),
        }
    }

    fn postgres() -> Self {
        let url = Postgres::shared().database();
        let db = PgDatabase::open(&url, "node-a").unwrap();
        let sealer = db
            .cluster_sealer(&MasterKey::generate().unwrap(), "test")
            .unwrap();
        Self {
            stores: db.stores(sealer.clone()),
            keys: Arc::new(db.key_store(sealer)),
            raw: Raw::Postgres(url),
        }
    }

    /// Runs `sql` directly against the backend's database.
    fn sql(&self, sql: &str) -> String {
        match &self.raw {
            Raw::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
                conn.execute_batch(sql).unwrap();
                String::new()
            }
            Raw::Postgres(url) => Postgres::shared().psql(url, sql),
        }
    }
}

/// Runs a behaviour against both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Backend::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(&super::Backend::postgres());
            }
        }
    };
}

fn config(name: &str, version: &str, secret: &str) -> FunctionConfiguration {
    serde_json::from_value(serde_json::json!({
        "FunctionName": name, "FunctionArn": format!("arn:aws:lambda:us-east-1:1:function:{name}"),
        "Runtime": "nodejs20.x", "Role": "r", "Handler": "h.h", "CodeSize": 1,
        "Description": "", "Timeout": 3, "MemorySize": 128, "LastModified": "x",
        "CodeSha256": "x", "Version": version,
        "Environment": { "Variables": { "SECRET": secret } },
        "TracingConfig": { "Mode": "PassThrough" }, "RevisionId": "r", "State": "Active",
        "LastUpdateStatus": "Successful", "PackageType": "Zip",
        "Architectures": ["x86_64"], "EphemeralStorage": { "Size": 512 }
    }))
    .unwrap()
}

fn function(name: &str, secret: &str) -> StoredFunction {
    StoredFunction {
        config: config(name, "$LATEST", secret),
        code_hex: "c0de".into(),
        version_counter: 0,
        reserved: None,
    }
}

fn alias(name: &str, version: &str) -> AliasConfiguration {
    AliasConfiguration {
        alias_arn: format!("arn:aws:lambda:us-east-1:1:function:f:{name}"),
        name: name.into(),
        function_version: version.into(),
        description: String::new(),
        routing_config: None,
        revision_id: "rev".into(),
    }
}

fn retries(n: i64) -> EventInvokeConfig {
    EventInvokeConfig {
        maximum_retry_attempts: Some(n),
        ..Default::default()
    }
}

fn schedule(rate: &str) -> Event {
    Event::Schedule(ScheduleEvent {
        rate: vec![rate.into()],
        enabled: true,
        input: None,
        input_path: None,
        name: None,
    })
}

fn secret_of(c: &FunctionConfiguration) -> String {
    c.environment.as_ref().unwrap().variables["SECRET"].clone()
}

/// Publishes version `n` of `f` (as the registry does: counter and version together).
fn publish(b: &Backend, f: &mut StoredFunction, n: u64) -> Result<(), StoreError> {
    let mut v = f.config.clone();
    v.version = n.to_string();
    let mut next = f.clone();
    next.version_counter = n;
    b.stores.functions.put_version(
        &next,
        &StoredVersion {
            config: v,
            code_hex: f.code_hex.clone(),
        },
        &f.config.revision_id,
    )?;
    f.version_counter = n;
    Ok(())
}

fn function_lifecycle(b: &Backend) {
    let fs = &b.stores.functions;
    let tags = BTreeMap::from([("team".to_string(), "a".to_string())]);
    let mut f = function("f", "s3cret");
    fs.create_function(&f, &tags).unwrap();
    fs.create_function(&function("g", "other"), &BTreeMap::new())
        .unwrap();
    let loaded = fs.load().unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].function.config.function_name, "f");
    assert_eq!(secret_of(&loaded[0].function.config), "s3cret");
    assert_eq!(fs.all_tags().unwrap()["f"], tags);

    // $LATEST changes, reserved concurrency, two versions, aliases, provisioned.
    f.config.description = "updated".into();
    f.reserved = Some(5);
    fs.put_function(&f, "r").unwrap();
    publish(b, &mut f, 1).unwrap();
    publish(b, &mut f, 2).unwrap();
    fs.put_alias("f", &alias("live", "1"), None).unwrap();
    fs.put_alias("f", &alias("live", "2"), Some("rev")).unwrap();
    fs.put_alias("f", &alias("old", "1"), None).unwrap();
    fs.put_provisioned("f", "live", Some((3, "t1"))).unwrap();
    fs.put_provisioned("f", "1", Some((1, "t2"))).unwrap();
    fs.put_provisioned("f", "live", Some((4, "t3"))).unwrap();
    fs.put_event_invoke_config("f", "$LATEST", Some(&retries(1)))
        .unwrap();
    fs.put_event_invoke_config("f", "live", Some(&retries(0)))
        .unwrap();
    fs.put_event_invoke_config("f", "live", Some(&retries(2)))
        .unwrap();

    let loaded = fs.load().unwrap();
    let lf = &loaded[0];
    assert_eq!(lf.function.config.description, "updated");
    assert_eq!(lf.function.reserved, Some(5));
    assert_eq!(lf.function.version_counter, 2);
    let versions: Vec<_> = lf
        .versions
        .iter()
        .map(|v| v.config.version.clone())
        .collect();
    assert_eq!(versions, ["1", "2"]);
    assert_eq!(secret_of(&lf.versions[1].config), "s3cret");
    let aliases: Vec<_> = lf
        .aliases
        .iter()
        .map(|a| (a.name.clone(), a.function_version.clone()))
        .collect();
    assert_eq!(
        aliases,
        [("live".into(), "2".into()), ("old".into(), "1".into())]
    );
    let mut prov = lf.provisioned.clone();
    prov.sort();
    assert_eq!(
        prov,
        [
            ("1".into(), 1, "t2".into()),
            ("live".into(), 4, "t3".into())
        ]
    );
    assert_eq!(
        fs.event_invoke_config("f", "live").unwrap().unwrap(),
        retries(2)
    );
    assert_eq!(fs.event_invoke_config("f", "nope").unwrap(), None);
    assert_eq!(
        fs.event_invoke_configs("f").unwrap(),
        [retries(1), retries(2)]
    );

    // One function alone reads the same as in the full load.
    let one = fs.load_function("f").unwrap().unwrap();
    assert_eq!(format!("{one:?}"), format!("{lf:?}"));
    assert_eq!(
        fs.load_function("g")
            .unwrap()
            .unwrap()
            .function
            .config
            .function_name,
        "g"
    );
    assert!(fs.load_function("nope").unwrap().is_none());

    // Deleting a version or alias takes its provisioned config with it.
    fs.delete_version("f", "1").unwrap();
    fs.delete_alias("f", "live").unwrap();
    let lf = fs.load().unwrap().remove(0);
    assert_eq!(lf.versions.len(), 1);
    assert_eq!(lf.aliases.len(), 1);
    assert!(lf.provisioned.is_empty(), "{:?}", lf.provisioned);
    fs.put_event_invoke_config("f", "live", None).unwrap();
    assert_eq!(fs.event_invoke_configs("f").unwrap(), [retries(1)]);
    fs.put_tags("f", &BTreeMap::from([("x".into(), "y".into())]))
        .unwrap();
    assert_eq!(fs.all_tags().unwrap()["f"].len(), 1);

    // Deleting the function takes everything keyed by it, event sources included,
    // and leaves the other function alone.
    b.stores
        .mappings
        .put_function_events("f", &[schedule("rate(1 minute)")], 1)
        .unwrap();
    let esm = serde_json::json!({"UUID": "u1", "FunctionArn": "f"});
    b.stores
        .mappings
        .put_event_source_mapping("u1", "f", Some(&esm))
        .unwrap();
    fs.delete_function("f").unwrap();
    let loaded = fs.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].function.config.function_name, "g");
    assert!(!fs.all_tags().unwrap().contains_key("f"));
    assert!(fs.event_invoke_configs("f").unwrap().is_empty());
    assert!(b.stores.mappings.all_function_events().unwrap().is_empty());
    assert!(b
        .stores
        .mappings
        .event_source_mappings()
        .unwrap()
        .is_empty());
    // A new function of the same name starts afresh.
    fs.create_function(&function("f", "new"), &BTreeMap::new())
        .unwrap();
    let lf = fs.load().unwrap().remove(0);
    assert!(lf.versions.is_empty() && lf.aliases.is_empty());
    assert_eq!(lf.function.version_counter, 0);
}
both!(function_lifecycle);

/// Writes based on a RevisionId that is no longer the stored one (another node
/// wrote first) are refused and change nothing: `$LATEST`, publishing, aliases.
fn stale_revisions_are_refused(b: &Backend) {
    let fs = &b.stores.functions;
    let mut f = function("f", "s");
    fs.create_function(&f, &BTreeMap::new()).unwrap();
    // Node A changes $LATEST from revision r to r-a.
    let mut from_a = f.clone();
    from_a.config.description = "from a".into();
    from_a.config.revision_id = "r-a".into();
    fs.put_function(&from_a, "r").unwrap();
    // Node B, which still holds revision r, changes another field: refused.
    let mut from_b = f.clone();
    from_b.config.memory_size = 512;
    from_b.config.revision_id = "r-b".into();
    let err = fs.put_function(&from_b, "r").unwrap_err();
    assert!(
        matches!(&err, StoreError::RevisionMismatch { what, expected } if what == "function f" && expected == "r"),
        "{err:?}"
    );
    // Reserved concurrency from a stale copy is refused too (it would write the
    // stale configuration back).
    from_b.reserved = Some(3);
    assert!(matches!(
        fs.put_function(&from_b, "r"),
        Err(StoreError::RevisionMismatch { .. })
    ));
    let stored = &fs.load_function("f").unwrap().unwrap().function;
    assert_eq!(stored.config.revision_id, "r-a");
    assert_eq!(stored.config.description, "from a");
    assert_eq!(stored.config.memory_size, 128);
    assert_eq!(stored.reserved, None);
    // B, having re-read, writes on top of A's change.
    from_b.config.description = "from a".into();
    fs.put_function(&from_b, "r-a").unwrap();

    // A version snapshotting a $LATEST that is no longer the stored one: refused,
    // no version stored, the counter unchanged.
    let err = publish(b, &mut f, 1).unwrap_err();
    assert!(
        matches!(err, StoreError::RevisionMismatch { .. }),
        "{err:?}"
    );
    let loaded = fs.load_function("f").unwrap().unwrap();
    assert!(loaded.versions.is_empty());
    assert_eq!(loaded.function.version_counter, 0);
    let mut latest = loaded.function;
    publish(b, &mut latest, 1).unwrap();
    assert_eq!(fs.load_function("f").unwrap().unwrap().versions.len(), 1);

    // Aliases: creating one that exists by now is a conflict; an update from a
    // stale revision is refused; so is an update of an alias deleted meanwhile.
    fs.put_alias("f", &alias("live", "1"), None).unwrap();
    let err = fs
        .put_alias("f", &alias("live", "$LATEST"), None)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("Alias already exists")),
        "{err:?}"
    );
    let mut moved = alias("live", "$LATEST");
    moved.revision_id = "rev-a".into();
    fs.put_alias("f", &moved, Some("rev")).unwrap();
    let mut stale = alias("live", "1");
    stale.description = "from b".into();
    stale.revision_id = "rev-b".into();
    let err = fs.put_alias("f", &stale, Some("rev")).unwrap_err();
    assert!(
        matches!(&err, StoreError::RevisionMismatch { what, .. } if what == "alias f:live"),
        "{err:?}"
    );
    let aliases = fs.load_function("f").unwrap().unwrap().aliases;
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases[0].function_version, "$LATEST");
    assert_eq!(aliases[0].revision_id, "rev-a");
    fs.delete_alias("f", "live").unwrap();
    let err = fs.put_alias("f", &stale, Some("rev-a")).unwrap_err();
    assert!(
        matches!(err, StoreError::RevisionMismatch { .. }),
        "{err:?}"
    );
    assert!(fs.load_function("f").unwrap().unwrap().aliases.is_empty());
}

both!(stale_revisions_are_refused);

fn deployments(b: &Backend) {
    let ds = &b.stores.deployments;
    ds.put_service_function("svc", "dev", "hello", "svc-dev-hello")
        .unwrap();
    ds.put_service_function("svc", "dev", "bye", "svc-dev-bye")
        .unwrap();
    ds.put_service_function("svc", "prod", "hello", "svc-prod-hello")
        .unwrap();
    assert_eq!(
        ds.service_functions("svc", "dev").unwrap(),
        [
            ("bye".into(), "svc-dev-bye".into()),
            ("hello".into(), "svc-dev-hello".into())
        ]
    );
    assert_eq!(
        ds.owner_of("svc-prod-hello").unwrap(),
        Some(("svc".into(), "prod".into()))
    );
    assert_eq!(ds.owner_of("nobody").unwrap(), None);
    let request = r#"{"functions":[{"environment":{"TOKEN":"deploy-secret"}}]}"#;
    ds.add_deployment("svc", "dev", 10, request, "{\"ok\":1}")
        .unwrap();
    ds.add_deployment("svc", "dev", 20, "{}", "{\"ok\":2}")
        .unwrap();
    let d = ds.deployments("svc", "dev").unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0], (10, request.to_string(), "{\"ok\":1}".to_string()));
    assert_eq!(d[1].0, 20);
    ds.delete_service_function("svc", "dev", "bye").unwrap();
    assert_eq!(ds.service_functions("svc", "dev").unwrap().len(), 1);
    ds.delete_service("svc", "dev").unwrap();
    assert!(ds.service_functions("svc", "dev").unwrap().is_empty());
    assert!(ds.deployments("svc", "dev").unwrap().is_empty());
    assert_eq!(ds.service_functions("svc", "prod").unwrap().len(), 1);
}
both!(deployments);

fn mappings(b: &Backend) {
    let ms = &b.stores.mappings;
    let events = [schedule("rate(1 minute)")];
    assert!(ms.put_function_events("f", &events, 100).unwrap());
    // Unchanged: not a change, and the creation time stays.
    assert!(!ms.put_function_events("f", &events, 200).unwrap());
    assert_eq!(
        ms.all_function_events().unwrap(),
        [("f".to_string(), events.to_vec(), 100)]
    );
    let changed = [schedule("rate(2 minutes)")];
    assert!(ms.put_function_events("f", &changed, 300).unwrap());
    assert_eq!(ms.all_function_events().unwrap()[0].2, 300);
    assert!(ms.put_function_events("f", &[], 400).unwrap());
    assert!(!ms.put_function_events("f", &[], 500).unwrap());
    assert!(ms.all_function_events().unwrap().is_empty());

    let a = serde_json::json!({"UUID": "a", "BatchSize": 1});
    let a2 = serde_json::json!({"UUID": "a", "BatchSize": 5});
    let c = serde_json::json!({"UUID": "c"});
    ms.put_event_source_mapping("a", "f", Some(&a)).unwrap();
    ms.put_event_source_mapping("c", "g", Some(&c)).unwrap();
    ms.put_event_source_mapping("a", "f", Some(&a2)).unwrap();
    assert_eq!(ms.event_source_mappings().unwrap(), [a2, c.clone()]);
    ms.put_event_source_mapping("a", "f", None).unwrap();
    assert_eq!(ms.event_source_mappings().unwrap(), [c]);
}
both!(mappings);

fn access_keys(b: &Backend) {
    let mut k = StoredKey {
        id: "AKIAAAAAAAAAAAAAAAAA".into(),
        name: "alice".into(),
        secret: "key-s3cret".into(),
        policies: BTreeMap::from([("p".to_string(), "{}".to_string())]),
        created: "2026-01-01T00:00:00Z".into(),
    };
    b.keys.put_key(&k).unwrap();
    k.policies
        .insert("q".into(), "{\"Version\":\"2012-10-17\"}".into());
    b.keys.put_key(&k).unwrap();
    let other = StoredKey {
        id: "AKIABBBBBBBBBBBBBBBB".into(),
        created: "2026-01-02T00:00:00Z".into(),
        ..k.clone()
    };
    b.keys.put_key(&other).unwrap();
    assert_eq!(b.keys.all_keys().unwrap(), [k.clone(), other.clone()]);
    // The secret is stored sealed.
    let stored = match &b.raw {
        Raw::Postgres(_) => b.sql("SELECT encode(secret, 'escape') FROM access_keys"),
        Raw::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
            let raw: Vec<u8> = conn
                .query_row("SELECT secret FROM access_keys LIMIT 1", [], |r| r.get(0))
                .unwrap();
            String::from_utf8_lossy(&raw).into_owned()
        }
    };
    assert!(!stored.is_empty() && !stored.contains("key-s3cret"));
    assert!(b.keys.delete_key(&k.id).unwrap());
    assert!(!b.keys.delete_key(&k.id).unwrap());
    assert_eq!(b.keys.all_keys().unwrap(), [other]);
}
both!(access_keys);

fn malformed_rows_are_decode_errors(b: &Backend) {
    let fs = &b.stores.functions;
    fs.create_function(&function("f", "s"), &BTreeMap::new())
        .unwrap();
    fs.put_alias("f", &alias("live", "$LATEST"), None).unwrap();
    fs.put_event_invoke_config("f", "$LATEST", Some(&retries(1)))
        .unwrap();
    b.stores
        .mappings
        .put_function_events("f", &[schedule("rate(1 minute)")], 1)
        .unwrap();
    b.sql("UPDATE aliases SET config = '{not json'");
    let err = fs.load().unwrap_err();
    assert!(
        matches!(err, StoreError::Decode { what: "alias", .. }),
        "{err}"
    );
    b.sql("UPDATE event_invoke_config SET config = '[1,2]'");
    let err = fs.event_invoke_config("f", "$LATEST").unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Decode {
                what: "event invoke config",
                ..
            }
        ),
        "{err}"
    );
    b.sql("UPDATE function_events SET events = 'null x'");
    let err = b.stores.mappings.all_function_events().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Decode {
                what: "function events",
                ..
            }
        ),
        "{err}"
    );
    b.sql("UPDATE functions SET config = '{\"FunctionName\": 7}'");
    let err = fs.load().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Decode {
                what: "function",
                ..
            }
        ),
        "{err}"
    );
}
both!(malformed_rows_are_decode_errors);

// ---- What only the cluster backend has. ----

/// Two nodes on one database sharing `master`.
fn two_nodes(master: &MasterKey) -> (String, Stores, Stores) {
    let url = Postgres::shared().database();
    let a = PgDatabase::open(&url, "node-a").unwrap();
    let b = PgDatabase::open(&url, "node-b").unwrap();
    let sa = a.cluster_sealer(master, "test").unwrap();
    let sb = b.cluster_sealer(master, "test").unwrap();
    (url, a.stores(sa), b.stores(sb))
}

#[test]
fn two_nodes_never_hand_out_the_same_version_number() {
    let master = MasterKey::generate().unwrap();
    let (url, a, b) = two_nodes(&master);
    let f = function("f", "s");
    a.functions.create_function(&f, &BTreeMap::new()).unwrap();
    // Both nodes believe the counter is 0 and publish version 1: one wins, the
    // other is told so and stores nothing.
    let put = |s: &Stores, n: u64| {
        let mut v = f.config.clone();
        v.version = n.to_string();
        let next = StoredFunction {
            version_counter: n,
            ..f.clone()
        };
        s.functions.put_version(
            &next,
            &StoredVersion {
                config: v,
                code_hex: "c0de".into(),
            },
            "r",
        )
    };
    put(&a, 1).unwrap();
    let err = put(&b, 1).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("already published"), "{err}");
    // A node that has not heard of version 1 updates $LATEST with its stale
    // counter: the counter does not go back.
    b.functions.put_function(&f, "r").unwrap();
    assert_eq!(a.functions.load().unwrap()[0].function.version_counter, 1);
    assert!(put(&b, 1).is_err());

    // Many publishers on both nodes at once, each from what it last read.
    let published: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let node = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..15 {
                        let seen = node.functions.load().unwrap()[0].function.version_counter;
                        match put(node, seen + 1) {
                            Ok(()) => mine.push(seen + 1),
                            Err(StoreError::Conflict(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<u64> = published.iter().copied().collect();
    assert_eq!(unique.len(), published.len(), "{published:?}");
    let rows = Postgres::shared().psql(&url, "SELECT count(*), max(version) FROM versions");
    let expect = format!("{}|{}", published.len() + 1, published.len() + 1);
    assert_eq!(rows.trim(), expect);
    // Writes to a function another node deleted are refused, not resurrected.
    a.functions.delete_function("f").unwrap();
    let err = b.functions.put_function(&f, "r").unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    let err = b
        .functions
        .put_alias("f", &alias("x", "1"), None)
        .unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    let err = put(&b, 99).unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    assert!(a.functions.load().unwrap().is_empty());
    // Creating what another node created is a conflict too.
    a.functions.create_function(&f, &BTreeMap::new()).unwrap();
    let err = b
        .functions
        .create_function(&f, &BTreeMap::new())
        .unwrap_err();
    assert!(err.to_string().contains("already exist"), "{err}");
}

/// Listens on the changes channel of `url`; returns the received payloads.
struct Listener {
    rx: std::sync::mpsc::Receiver<String>,
    _rt: tokio::runtime::Runtime,
}

impl Listener {
    fn start(url: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let url = url.to_string();
        rt.spawn(async move {
            let (client, mut conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let pump = tokio::spawn(async move {
                while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    if let tokio_postgres::AsyncMessage::Notification(n) = m {
                        let _ = tx.send(n.payload().to_string());
                    }
                }
            });
            client
                .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            let _ = pump.await;
            drop(client);
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        Self { rx, _rt: rt }
    }

    fn next(&self) -> Change {
        let payload = self
            .rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a notification within 5 s");
        serde_json::from_str(&payload).unwrap()
    }

    fn none(&self) {
        let got = self.rx.recv_timeout(std::time::Duration::from_millis(300));
        assert!(got.is_err(), "unexpected notification {got:?}");
    }
}

#[test]
fn every_write_notifies_listeners_on_commit() {
    let url = Postgres::shared().database();
    let db = PgDatabase::open(&url, "node-7").unwrap();
    let sealer = db
        .cluster_sealer(&MasterKey::generate().unwrap(), "test")
        .unwrap();
    let stores = db.stores(sealer.clone());
    let keys = db.key_store(sealer);
    let l = Listener::start(&url);
    let change = |kind, name: &str| Change {
        node: "node-7".into(),
        kind,
        name: name.into(),
    };
    let fs = &stores.functions;
    let mut f = function("fn1", "s");
    fs.create_function(&f, &BTreeMap::new()).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.put_function(&f, "r").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    let b = Backend {
        stores: stores.clone(),
        keys: Arc::new(keys),
        raw: Raw::Postgres(url.clone()),
    };
    publish(&b, &mut f, 1).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.put_alias("fn1", &alias("a", "1"), None).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.put_provisioned("fn1", "a", Some((1, "t"))).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.put_tags("fn1", &BTreeMap::new()).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.put_event_invoke_config("fn1", "a", Some(&retries(1)))
        .unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.delete_alias("fn1", "a").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    fs.delete_version("fn1", "1").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));

    let ds = &stores.deployments;
    ds.put_service_function("svc", "dev", "k", "fn1").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Service, "svc/dev"));
    ds.add_deployment("svc", "dev", 1, "{}", "{}").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Service, "svc/dev"));
    ds.delete_service_function("svc", "dev", "k").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Service, "svc/dev"));
    ds.delete_service("svc", "dev").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Service, "svc/dev"));

    let ms = &stores.mappings;
    ms.put_function_events("fn1", &[schedule("rate(1 minute)")], 1)
        .unwrap();
    assert_eq!(l.next(), change(ChangeKind::Mappings, "fn1"));
    // Nothing changed: nothing to tell.
    ms.put_function_events("fn1", &[schedule("rate(1 minute)")], 2)
        .unwrap();
    l.none();
    ms.put_event_source_mapping("u", "fn1", Some(&serde_json::json!({})))
        .unwrap();
    assert_eq!(l.next(), change(ChangeKind::Mappings, "fn1"));

    let key = StoredKey {
        id: "AKIAKEYKEYKEYKEYKEY1".into(),
        name: "k".into(),
        secret: "s".into(),
        policies: BTreeMap::new(),
        created: "t".into(),
    };
    b.keys.put_key(&key).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Keys, &key.id));
    b.keys.delete_key(&key.id).unwrap();
    assert_eq!(l.next(), change(ChangeKind::Keys, &key.id));

    fs.delete_function("fn1").unwrap();
    assert_eq!(l.next(), change(ChangeKind::Function, "fn1"));
    assert_eq!(l.next(), change(ChangeKind::Mappings, "fn1"));
    // A write that fails sends nothing (the notification is part of its
    // transaction).
    assert!(fs.put_function(&f, "r").is_err());
    l.none();
}

#[test]
fn nodes_with_the_same_master_key_share_sealed_values_and_others_are_refused() {
    let master = MasterKey::generate().unwrap();
    let (url, a, b) = two_nodes(&master);
    a.functions
        .create_function(&function("f", "cluster-s3cret"), &BTreeMap::new())
        .unwrap();
    a.deployments
        .add_deployment("s", "dev", 1, "{\"TOKEN\":\"deploy-s3cret\"}", "{}")
        .unwrap();
    // Another node opens what this one sealed.
    assert_eq!(
        secret_of(&b.functions.load().unwrap()[0].function.config),
        "cluster-s3cret"
    );
    assert!(b.deployments.deployments("s", "dev").unwrap()[0]
        .1
        .contains("deploy-s3cret"));
    // Nothing secret is stored in the clear.
    let dump = Postgres::shared().psql(
        &url,
        "SELECT config FROM functions UNION ALL SELECT encode(request, 'escape') FROM deployments",
    );
    assert!(!dump.contains("s3cret"), "{dump}");
    assert_eq!(
        Postgres::shared()
            .psql(&url, "SELECT count(*) FROM cluster_keys")
            .trim(),
        "1"
    );
    // A node given another master key refuses to start, saying why.
    let c = PgDatabase::open(&url, "node-c").unwrap();
    let err = c
        .cluster_sealer(&MasterKey::generate().unwrap(), "STRATUS_MASTER_KEY")
        .unwrap_err();
    assert!(matches!(err, StoreError::ClusterKeys(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("STRATUS_MASTER_KEY") && text.contains("same"),
        "{text}"
    );
}

#[test]
fn an_unreachable_or_misspelt_database_is_a_clear_error_at_open() {
    let port = stratus_testkit::free_port();
    let url = format!("postgres://stratus:hunter2@127.0.0.1:{port}/state");
    let err = PgDatabase::open(&url, "n").unwrap_err().to_string();
    assert!(
        err.contains("cannot connect to the cluster database")
            && err.contains(&format!("127.0.0.1:{port}/state")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(!err.contains("hunter2"), "password shown: {err}");
    let err = PgDatabase::open("postgres://u:pw@host:notaport/db", "n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid PostgreSQL URL"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
}

#[test]
fn nodes_starting_together_migrate_once() {
    let url = Postgres::shared().database();
    let master = MasterKey::generate().unwrap();
    let sealers: Vec<Sealer> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (url, master) = (&url, &master);
                s.spawn(move || {
                    let db = PgDatabase::open(url, &format!("n{i}")).unwrap();
                    db.cluster_sealer(master, "test").unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sealed = sealers[0].seal(b"x", b"v").unwrap();
    for s in &sealers {
        assert_eq!(s.open(b"x", &sealed).unwrap(), b"v");
    }
    let pg = Postgres::shared();
    assert_eq!(
        pg.psql(&url, "SELECT count(*) FROM cluster_keys").trim(),
        "1"
    );
    // Each migration file applied exactly once, however many nodes raced.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with('V') && name.ends_with(".sql")
        })
        .count();
    let applied = pg.psql(
        &url,
        "SELECT count(*), count(DISTINCT version) FROM stratus_schema_history",
    );
    assert_eq!(applied.trim(), format!("{files}|{files}"));
}

/// The blocking store methods are safe to call from async code of either runtime
/// flavour (the registry calls some on async workers).
#[test]
fn stores_can_be_called_from_async_contexts() {
    let b = Backend::postgres();
    b.stores
        .functions
        .create_function(&function("f", "s"), &BTreeMap::new())
        .unwrap();
    let stores = b.stores.clone();
    drop(b);
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = current.block_on(async { stores.functions.load().unwrap().len() });
    assert_eq!(n, 1);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = multi.block_on(async {
        let s = stores.clone();
        tokio::spawn(async move { s.functions.load().unwrap().len() })
            .await
            .unwrap()
    });
    assert_eq!(n, 1);
    let n = multi.block_on(async {
        let s = stores.clone();
        tokio::task::spawn_blocking(move || s.functions.load().unwrap().len())
            .await
            .unwrap()
    });
    assert_eq!(n, 1);
    // The last handle dropped inside a runtime does not panic.
    multi.block_on(async move { drop(stores) });
}

#[test]
fn a_database_that_goes_away_fails_writes_clearly_and_nothing_panics() {
    let pg = Postgres::start();
    let url = pg.database();
    let db = PgDatabase::open(&url, "n").unwrap();
    let sealer = db
        .cluster_sealer(&MasterKey::generate().unwrap(), "test")
        .unwrap();
    let stores = db.stores(sealer);
    stores
        .functions
        .create_function(&function("f", "s"), &BTreeMap::new())
        .unwrap();
    pg.stop();
    for _ in 0..2 {
        let err = stores
            .functions
            .put_tags("f", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster state store"), "{err}");
        // The cause is named, not just "error connecting".
        assert!(err.to_lowercase().contains("refused"), "{err}");
        let err = stores.functions.load().unwrap_err().to_string();
        assert!(err.contains("cluster state store"), "{err}");
    }
}
