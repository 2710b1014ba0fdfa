//! The cluster harness: nodes of one cluster on the shared PostgreSQL of the test
//! binary (a database per cluster), one NATS server per cluster, a shared blob
//! directory, and the polling helpers the cluster tests wait with.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use super::{json_body, raw_zip, Server};

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A fresh master key, as every node of one cluster must share.
pub fn master_key() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The NATS server of the cluster whose database is `url`: one per cluster, so
/// clusters of different tests never share a stream (started at first use, stopped
/// when the test process exits).
pub fn nats_for(url: &str) -> &'static str {
    static NATS: Mutex<Vec<(String, &'static str, stratus_testkit::Nats)>> = Mutex::new(Vec::new());
    let mut all = NATS.lock().unwrap();
    if let Some((_, u, _)) = all.iter().find(|(db, _, _)| db == url) {
        return u;
    }
    let nats = stratus_testkit::Nats::start();
    let u: &'static str = Box::leak(nats.url().into_boxed_str());
    all.push((url.to_string(), u, nats));
    u
}

/// The flags of a node of the cluster at `url` sharing `blobs`.
pub fn node_flags<'a>(url: &'a str, blobs: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "--cluster",
        url,
        "--nats",
        nats_for(url),
        "--blobs",
        blobs,
        "--node-id",
        id,
        "--sandbox",
        "process",
    ]
}

pub async fn start_node(dir: &Path, url: &str, blobs: &str, id: &str, key: &str) -> Server {
    Server::start_env(
        dir,
        &node_flags(url, blobs, id),
        &[("STRATUS_MASTER_KEY", key)],
    )
    .await
}

/// `GET /stratus/v1/cluster` through `s`.
pub async fn status(s: &Server) -> Value {
    let r = s
        .api
        .call("GET", "/stratus/v1/cluster", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json_body(&r)
}

pub fn health_of(v: &Value, id: &str) -> String {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["health"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no node {id} in {v:#}"))
}

/// Polls `check` every 20 ms until it is true; returns how long that took.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if check().await {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The credentials file's access key id.
pub fn key_id(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("credentials")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .unwrap()
        .to_string()
}

/// A Node.js package whose handler answers `{"message": message}`.
pub fn node_zip(message: &str) -> Vec<u8> {
    let js = format!("exports.handler = async () => ({{ message: {message:?} }});\n");
    raw_zip(&[("index.js", js.as_bytes())])
}

/// A cluster under test: its database, shared blobs, master key and a temp dir;
/// nodes are started (and restarted) on it with [`Cluster::node`].
pub struct Cluster {
    pub url: String,
    pub blobs: String,
    pub key: String,
    pub tmp: tempfile::TempDir,
}

impl Cluster {
    /// A new cluster: a fresh database on the binary's shared PostgreSQL.
    pub fn new() -> Self {
        let url = stratus_testkit::Postgres::shared().database();
        let tmp = tempfile::tempdir().unwrap();
        let blobs = format!("file://{}", tmp.path().join("blobs").display());
        Self {
            url,
            blobs,
            key: master_key(),
            tmp,
        }
    }

    /// Starts node `id` with its data dir `{tmp}/{id}` (kept across restarts).
    pub async fn node(&self, id: &str) -> Server {
        start_node(
            &self.tmp.path().join(id),
            &self.url,
            &self.blobs,
            id,
            &self.key,
        )
        .await
    }

    /// Starts node `id` with `extra` flags after the cluster's.
    pub async fn node_with(&self, id: &str, extra: &[&str]) -> Server {
        let mut flags = node_flags(&self.url, &self.blobs, id);
        flags.extend_from_slice(extra);
        Server::start_env(
            &self.tmp.path().join(id),
            &flags,
            &[("STRATUS_MASTER_KEY", self.key.as_str())],
        )
        .await
    }

    /// The NATS URL of this cluster.
    pub fn nats(&self) -> &'static str {
        nats_for(&self.url)
    }
}

/// `http://addr` of a server.
pub fn ep(s: &Server) -> String {
    format!("http://{}", s.addr)
}
