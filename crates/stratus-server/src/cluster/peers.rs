//! Calls from this node to the other nodes of its cluster, for reads that must see
//! every node's local data (logs and metrics stay on the node that produced them).
//!
//! Design:
//! - **Who**: the other *healthy* nodes of the `nodes` table (heartbeat younger
//!   than [`super::DEAD_AFTER`]), read at most once a second (a burst of reads
//!   shares one query); a node that is dead or stopped is not asked.
//! - **How**: plain HTTP/1.1 to the peer's advertised address, the request signed
//!   (SigV4) with the cluster's admin key — the one key every node holds (the key
//!   store is the cluster's) — so the peer authenticates and authorizes it exactly
//!   as any other client's: nothing new is open to anonymous callers. With `--no-auth`
//!   requests go unsigned, as every client's may.
//! - **Local answers**: the request carries [`FANOUT_HEADER`]; a node answers such a
//!   request from its own data only and never fans out again (no loops, no N²).
//! - **Failure**: every call has a short timeout ([`CALL_TIMEOUT`]); a node that does
//!   not answer (or answers an unexpected error) is skipped by the caller, which says
//!   so ([`UNREACHABLE_HEADER`] on the answer, and a warning in the log), never an
//!   error for the whole query.
//!
//! Nothing here runs on the invoke path: only reads of logs and metrics use it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use deadpool_postgres::Pool;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;

use crate::auth::{Auth, ADMIN_POLICY_NAME};

/// A request carrying this header (any value) is answered from the receiving node's
/// own data; `minutes` asks a CloudWatch metric read for its raw per-minute rows.
pub const FANOUT_HEADER: &str = "x-stratus-fanout";

/// On a fanned-out answer: the nodes that did not answer, comma-separated.
pub const UNREACHABLE_HEADER: &str = "x-stratus-unreachable-nodes";

/// How long a peer has to answer one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the list of healthy nodes is reused.
const NODES_TTL: Duration = Duration::from_secs(1);

/// Whether `headers` ask for this node's own data only.
pub fn is_local(headers: &HeaderMap) -> bool {
    headers.contains_key(FANOUT_HEADER)
}

/// The other nodes of the cluster, reached over HTTP. Cheap to clone; the single
/// node's is empty ([`Peers::none`]) and never does anything.
#[derive(Clone, Default)]
pub struct Peers {
    inner: Option<Arc<Inner>>,
    node: Option<Arc<str>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("node", &self.node_id())
            .finish()
    }
}

struct Inner {
    me: String,
    pool: Pool,
    auth: Arc<Auth>,
    client: Client<HttpConnector, Full<Bytes>>,
    nodes: Mutex<Option<(Instant, Arc<Vec<Peer>>)>>,
}

/// Another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its id.
    pub id: String,
    /// `HOST:PORT` of its API.
    pub address: String,
}

/// A peer's answer.
#[derive(Debug)]
pub struct PeerReply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// A call that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No answer in time.
    #[error("node {node} at {address} did not answer within {timeout:?}")]
    Timeout {
        /// The node.
        node: String,
        /// Where it was asked.
        address: String,
        /// The limit.
        timeout: Duration,
    },
    /// The request failed (connection refused, reset, a malformed request).
    #[error("node {node} at {address}: {reason}")]
    Failed {
        /// The node.
        node: String,
        /// Where it was asked.
        address: String,
        /// What went wrong.
        reason: String,
    },
}

/// One request to a peer: method, path with query, extra headers, body.
#[derive(Debug, Clone)]
pub struct PeerRequest {
    /// GET or POST.
    pub method: Method,
    /// `/path?query`, already encoded.
    pub path: String,
    /// Headers besides `host`, [`FANOUT_HEADER`] and the signature's.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
    /// The signing service the peer checks the signature's scope against
    /// (`lambda`, `logs`, `monitoring`).
    pub service: &'static str,
}

impl Peers {
    /// The single node: no peers.
    pub fn none() -> Self {
        Self {
            inner: None,
            node: None,
        }
    }

    /// Node `me` of the cluster whose `nodes` table `pool` reaches, signing with the
    /// admin key of `auth`. With `tls` (the nodes serve HTTPS) no peer is asked: the
    /// client speaks plain HTTP only, so reads cover this node (said once, here).
    pub(crate) fn cluster(me: &str, pool: Pool, auth: Arc<Auth>, tls: bool) -> Self {
        if tls {
            tracing::warn!(node = %me, "with --tls, reads of logs and metrics cover this node only: the cluster's fan-out speaks plain HTTP");
            return Self::none_in_cluster(me);
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CALL_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner: Some(Arc::new(Inner {
                me: me.to_string(),
                pool,
                auth,
                client,
                nodes: Mutex::new(None),
            })),
            node: Some(Arc::from(me)),
        }
    }

    /// Node `me` of a cluster, asking no peer (see [`Peers::cluster`]).
    fn none_in_cluster(me: &str) -> Self {
        Self {
            inner: None,
            node: Some(Arc::from(me)),
        }
    }

    /// Whether reads fan out to other nodes.
    pub fn is_cluster(&self) -> bool {
        self.inner.is_some()
    }

    /// This node's id in a cluster (`None` on a single node).
    pub fn node_id(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The other healthy nodes (none for a single node). A failed read of the
    /// `nodes` table is logged and answers the last list known (or none).
    pub async fn others(&self) -> Arc<Vec<Peer>> {
        let Some(inner) = &self.inner else {
            return Arc::default();
        };
        if let Some((at, list)) = &*inner.nodes.lock() {
            if at.elapsed() < NODES_TTL {
                return list.clone();
            }
        }
        match super::nodes::list(&inner.pool).await {
            Ok(all) => {
                let list: Arc<Vec<Peer>> = Arc::new(
                    all.into_iter()
                        .filter(|n| n.health == "healthy" && n.id != inner.me)
                        .map(|n| Peer {
                            id: n.id,
                            address: n.address,
                        })
                        .collect(),
                );
                *inner.nodes.lock() = Some((Instant::now(), list.clone()));
                list
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the cluster's nodes: reading this node's data only");
                inner
                    .nodes
                    .lock()
                    .as_ref()
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default()
            }
        }
    }

    /// Sends each request to its peer, all at once; answers in the same order.
    pub async fn call_many(
        &self,
        calls: Vec<(Peer, PeerRequest)>,
    ) -> Vec<(Peer, Result<PeerReply, PeerError>)> {
        let mut set = tokio::task::JoinSet::new();
        for (i, (peer, req)) in calls.into_iter().enumerate() {
            let me = self.clone();
            set.spawn(async move {
                let r = me.call(&peer, req).await;
                (i, peer, r)
            });
        }
        let mut out = Vec::with_capacity(set.len());
        while let Some(done) = set.join_next().await {
            if let Ok(r) = done {
                out.push(r);
            }
        }
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, p, r)| (p, r)).collect()
    }

    /// Sends the same request to every other healthy node.
    pub async fn call_all(&self, req: PeerRequest) -> Vec<(Peer, Result<PeerReply, PeerError>)> {
        let calls = self
            .others()
            .await
            .iter()
            .map(|p| (p.clone(), req.clone()))
            .collect();
        self.call_many(calls).await
    }

    /// One signed request to `peer`, marked local, within [`CALL_TIMEOUT`].
    pub async fn call(&self, peer: &Peer, req: PeerRequest) -> Result<PeerReply, PeerError> {
        let failed = |reason: String| PeerError::Failed {
            node: peer.id.clone(),
            address: peer.address.clone(),
            reason,
        };
        let Some(inner) = &self.inner else {
            return Err(failed("this node is not in a cluster".into()));
        };
        let mut headers = HeaderMap::new();
        let host = HeaderValue::from_str(&peer.address)
            .map_err(|e| failed(format!("bad address: {e}")))?;
        headers.insert(http::header::HOST, host);
        headers.insert(
            HeaderName::from_static(FANOUT_HEADER),
            HeaderValue::from_static("local"),
        );
        for (name, value) in &req.headers {
            let v = HeaderValue::from_str(value).map_err(|e| failed(format!("header: {e}")))?;
            headers.insert(HeaderName::from_static(name), v);
        }
        let (path, query) = match req.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.path.as_str(), None),
        };
        if inner.auth.enabled() {
            let creds = admin_credentials(&inner.auth)
                .ok_or_else(|| failed("the cluster has no admin key to sign with".into()))?;
            stratus_auth::sign::sign_request(
                &creds,
                inner.auth.region(),
                req.service,
                req.method.as_str(),
                path,
                query,
                &mut headers,
                &req.body,
                time::OffsetDateTime::now_utc(),
            );
        }
        let uri = format!("http://{}{}", peer.address, req.path);
        let mut request = Request::builder()
            .method(req.method.clone())
            .uri(&uri)
            .body(Full::new(req.body.clone()))
            .map_err(|e| failed(format!("cannot build the request: {e}")))?;
        *request.headers_mut() = headers;
        let exchange = async {
            let resp = inner
                .client
                .request(request)
                .await
                .map_err(|e| failed(describe(&e)))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(PeerReply { status, body })
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout {
                node: peer.id.clone(),
                address: peer.address.clone(),
                timeout: CALL_TIMEOUT,
            }),
        }
    }
}

/// The error and its causes in one line (hyper's own message is often just
/// "client error (Connect)").
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The cluster's admin key (the oldest key of user `admin` with the administrator
/// policy): every node holds it, so every node verifies its signature.
fn admin_credentials(auth: &Auth) -> Option<stratus_auth::Credentials> {
    auth.keys()
        .into_iter()
        .find(|k| k.name == "admin" && k.policies.contains_key(ADMIN_POLICY_NAME))
        .map(|k| stratus_auth::Credentials {
            access_key_id: k.id,
            secret_access_key: k.secret,
            session_token: None,
        })
}

/// Logs the nodes that did not answer a fanned-out read and names them for the
/// answer's [`UNREACHABLE_HEADER`].
pub fn report_unreachable(what: &str, failures: &[(String, String)]) -> Option<String> {
    if failures.is_empty() {
        return None;
    }
    for (node, reason) in failures {
        tracing::warn!(node = %node, reason = %reason, "{what}: a node did not answer; its data is left out");
    }
    Some(
        failures
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// One node's event in a merged page: when it was stamped, the node, its row id
/// there, and the event.
#[derive(Debug, Clone)]
pub struct Merged<T> {
    /// Epoch ms.
    pub ts: i64,
    /// The node that holds it.
    pub node: String,
    /// Its row id on that node.
    pub id: i64,
    /// The event.
    pub event: T,
}

/// Merges pages of events from several nodes into one, at most `limit` events and
/// as many as `fits` accepts (called in order; the first event always fits): a
/// k-way merge of each node's page in *id* order, always taking the node whose next
/// event is stamped earliest (ties by node). So the page is in timestamp order as
/// far as each node's ids follow time (they do but for lines stamped in an
/// environment and written in a later batch), and of each node a prefix in id order
/// is taken: the node's next position (its last id taken) passes over nothing.
/// Answers the events taken and the nodes some of whose events were left.
pub fn merge_pages<T>(
    events: Vec<Merged<T>>,
    limit: usize,
    mut fits: impl FnMut(&T) -> bool,
) -> (Vec<Merged<T>>, std::collections::BTreeSet<String>) {
    let mut by_node: std::collections::BTreeMap<String, std::collections::VecDeque<Merged<T>>> =
        Default::default();
    for e in events {
        by_node.entry(e.node.clone()).or_default().push_back(e);
    }
    for q in by_node.values_mut() {
        q.make_contiguous().sort_by_key(|e| e.id);
    }
    let mut out = Vec::new();
    loop {
        let next = by_node
            .iter()
            .filter_map(|(n, q)| q.front().map(|e| (e.ts, n.clone())))
            .min();
        let Some((_, node)) = next else { break };
        let Some(q) = by_node.get_mut(&node) else {
            break;
        };
        let Some(front) = q.front() else { break };
        if out.len() == limit {
            break;
        }
        let fit = fits(&front.event);
        if !out.is_empty() && !fit {
            break;
        }
        if let Some(e) = q.pop_front() {
            out.push(e);
        }
    }
    let cut = by_node
        .into_iter()
        .filter(|(_, q)| !q.is_empty())
        .map(|(n, _)| n)
        .collect();
    (out, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, node: &str, id: i64) -> Merged<()> {
        Merged {
            ts,
            node: node.into(),
            id,
            event: (),
        }
    }

    #[test]
    fn pages_merge_by_time_and_keep_each_nodes_prefix() {
        let all = vec![
            ev(10, "a", 1),
            ev(30, "a", 2),
            ev(20, "b", 7),
            ev(40, "b", 8),
        ];
        let (kept, cut) = merge_pages(all.clone(), 3, |_| true);
        let got: Vec<_> = kept.iter().map(|e| (e.node.as_str(), e.id)).collect();
        assert_eq!(got, [("a", 1), ("b", 7), ("a", 2)]);
        assert_eq!(cut.into_iter().collect::<Vec<_>>(), ["b"]);
        // Node a's id 2 is stamped before its id 1: a's events are taken in id
        // order (taking id 2 first would make id 1 pass under the next position).
        let skewed = vec![ev(50, "a", 1), ev(5, "a", 2), ev(6, "b", 1)];
        let (kept, cut) = merge_pages(skewed, 2, |_| true);
        let got: Vec<_> = kept.iter().map(|e| (e.node.as_str(), e.id)).collect();
        assert_eq!(got, [("b", 1), ("a", 1)]);
        assert_eq!(cut.into_iter().collect::<Vec<_>>(), ["a"]);
        // Everything fits: nothing is cut.
        let (kept, cut) = merge_pages(all, 10, |_| true);
        assert_eq!(kept.len(), 4);
        assert!(cut.is_empty());
        // The size limit stops a page, but never before its first event.
        let (kept, _) = merge_pages(vec![ev(1, "a", 1), ev(2, "a", 2)], 10, |_| false);
        assert_eq!(kept.len(), 1);
    }
}
