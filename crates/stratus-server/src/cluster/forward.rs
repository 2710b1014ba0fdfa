//! Routing an invocation to a node with a warm environment (docs/cluster.md,
//! "Placement and failover").
//!
//! **The origin** (the node an Invoke arrives at, [`Router::invoke`]): first the
//! scheduler's warm-only admission ([`Scheduler::invoke_warm`]): with an idle local
//! environment the call runs exactly as on a single node (one in-memory check, no
//! other lookup). Without one, the candidates are the live nodes whose last
//! heartbeat showed an idle environment of the same pool, by rendezvous rank
//! ([`Placement::candidates`]), less the calls this node already has in flight to
//! them; each is asked in turn over direct HTTP (`POST` [`PATH`]) to run it warm.
//! A node that has no idle environment any more declines (spill-over to the next);
//! one that refuses the connection is skipped for a few seconds; when every
//! candidate declined, the call starts an environment locally, as before. A node
//! that fails after the request was sent (it died mid-invocation) is the caller's
//! error, `ServiceException` naming the node: the invocation may have run, and a
//! second run on another node would be a second execution nobody asked for.
//!
//! **The target** ([`routes`]): the route sits outside SigV4 authentication and
//! takes only requests signed by a node of the cluster: HMAC-SHA256 under a key
//! derived from the cluster's master key ([`ForwardKey`]) over the request's
//! metadata and the payload's SHA-256, within five minutes of the target's clock.
//! It runs the call only on an idle environment of the named pool and never
//! forwards it again (the loop guard: forwarded calls arrive only here, and this
//! route has no way out but the local scheduler). START/END/REPORT and the
//! function's log lines are written on the node that ran it.
//!
//! **The answer** carries the scheduler's result (payload, function error flag,
//! log tail, throttle reason) rather than an HTTP response, and the origin renders
//! it exactly as a local result: a routed call's response is byte-identical to a
//! local one's.
//!
//! Routing is plain HTTP to each node's `--advertise` address: the nodes are
//! expected on a private network. With `--tls` it is off (a node then runs every
//! call it receives, as before).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};
use stratus_scheduler::{
    FunctionSpec, InvokeError, InvokeRequest, InvokeResponse, Scheduler, ThrottleReason,
};

use super::placement::{pool_key, wire_key, Peer, Placement};
use crate::error::ApiError;

/// The internal route forwarded invocations arrive at.
pub const PATH: &str = "/stratus/v1/internal/invoke";

/// Headers of the forwarding protocol: one place.
mod h {
    /// The call's metadata, base64 of [`super::Meta`] as JSON. Its presence marks a
    /// forwarded call.
    pub(super) const META: &str = "x-stratus-forward";
    /// Hex HMAC-SHA256 of the metadata and the payload's hash.
    pub(super) const SIGNATURE: &str = "x-stratus-forward-signature";
    /// What happened: `ok`, `function-error`, `no-warm`, `throttled`,
    /// `shutting-down`, `start-failed`.
    pub(super) const OUTCOME: &str = "x-stratus-forward-outcome";
    /// With `throttled`: the reason.
    pub(super) const REASON: &str = "x-stratus-forward-reason";
    /// The log tail, base64, when asked for.
    pub(super) const LOG: &str = "x-stratus-forward-log";
}

/// How far the signer's clock may be from the target's.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// How long a node that refused a connection is not asked again.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// Longest wait to connect to another node.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Beyond the function's timeout, how long the origin waits for an answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// What a forwarded call carries besides its payload.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    /// The origin node.
    from: String,
    /// The pool, in its published form (`{function}/{version}/{revision}`).
    pool: String,
    request_id: String,
    invoked_arn: String,
    trace_id: Option<String>,
    client_context: Option<String>,
    tail: bool,
    /// When it was signed (epoch ms).
    time_ms: i64,
}

/// The key nodes sign forwarded calls with: HMAC-SHA256 of a fixed label under the
/// cluster's master key (which every node must share), so it is the same on every
/// node, never stored, and no other key of the cluster can pass for it.
#[derive(Clone)]
pub struct ForwardKey([u8; 32]);

impl std::fmt::Debug for ForwardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardKey(…)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl ForwardKey {
    /// The key derived from the cluster's master key.
    pub fn derive(master: &stratus_seal::MasterKey) -> Self {
        Self::from_secret(master.to_base64().as_bytes())
    }

    fn from_secret(secret: &[u8]) -> Self {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = HmacSha256::new_from_slice(secret) {
            mac.update(b"stratus/cluster/forwarded-invocations/v1");
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        Self(out)
    }

    fn mac(&self, meta: &str, body: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.0).ok()?;
        mac.update(b"v1\n");
        mac.update(meta.as_bytes());
        mac.update(b"\n");
        mac.update(hex::encode(Sha256::digest(body)).as_bytes());
        Some(mac)
    }

    fn sign(&self, meta: &str, body: &[u8]) -> String {
        self.mac(meta, body)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Constant-time check of a hex signature.
    fn verify(&self, meta: &str, body: &[u8], signature: &str) -> bool {
        let (Some(mac), Ok(sig)) = (self.mac(meta, body), hex::decode(signature)) else {
            return false;
        };
        mac.verify_slice(&sig).is_ok()
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// What one forwarding attempt came to.
enum Attempt {
    /// The target ran it (or throttled it): this is the caller's answer.
    Done(Result<InvokeResponse, InvokeError>),
    /// The target did not run it (no idle environment, unreachable, shutting
    /// down, refused our signature): try the next.
    Declined,
    /// The target failed after the call was sent: it may have run.
    Lost(String),
}

/// The origin's side: sends calls to nodes with warm environments.
#[derive(Debug)]
pub struct Router {
    me: String,
    key: ForwardKey,
    placement: Arc<Placement>,
    client: Client<HttpConnector, http_body_util::Full<Bytes>>,
    /// Calls this node has in flight to (node, pool): not counted as idle there.
    in_flight: Mutex<HashMap<(String, Arc<str>), u32>>,
    /// Nodes that refused a connection, until when they are skipped.
    down: Mutex<HashMap<String, Instant>>,
}

/// Gives back a reservation of an in-flight call when the attempt ends.
struct Reserved<'a> {
    router: &'a Router,
    slot: (String, Arc<str>),
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut m = self.router.in_flight.lock();
        if let Some(n) = m.get_mut(&self.slot) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.slot);
            }
        }
    }
}

impl Router {
    /// The router of node `me`.
    pub fn new(me: &str, key: ForwardKey, placement: Arc<Placement>) -> Arc<Self> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(http);
        Arc::new(Self {
            me: me.to_string(),
            key,
            placement,
            client,
            in_flight: Mutex::default(),
            down: Mutex::default(),
        })
    }

    /// Runs `req` on a warm environment: this node's, else another node's, else a
    /// new one here. `Err`: the node it was sent to failed mid-call.
    pub async fn invoke(
        &self,
        scheduler: &Scheduler,
        spec: &Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<Result<InvokeResponse, InvokeError>, ApiError> {
        let req = match scheduler.invoke_warm(spec, req).await {
            Ok(done) => return Ok(done),
            Err(req) => req,
        };
        for (peer, idle) in self.placement.candidates(spec) {
            let Some(_reserved) = self.reserve(&peer, &spec.pool_key, idle) else {
                continue;
            };
            match self.forward(&peer, spec, &req).await {
                Attempt::Done(answer) => return Ok(answer),
                Attempt::Declined => continue,
                Attempt::Lost(why) => return Err(ApiError::service(why)),
            }
        }
        Ok(scheduler.invoke(spec, req).await)
    }

    /// Counts a call in flight to `peer`, if it is up and has an idle environment
    /// not already taken by this node's calls.
    fn reserve(&self, peer: &Peer, pool: &Arc<str>, idle: u32) -> Option<Reserved<'_>> {
        {
            let mut down = self.down.lock();
            match down.get(&peer.id) {
                Some(until) if Instant::now() < *until => return None,
                Some(_) => {
                    down.remove(&peer.id);
                }
                None => {}
            }
        }
        let slot = (peer.id.clone(), pool.clone());
        let mut m = self.in_flight.lock();
        let n = m.entry(slot.clone()).or_insert(0);
        if *n >= idle {
            return None;
        }
        *n += 1;
        Some(Reserved { router: self, slot })
    }

    async fn forward(&self, peer: &Peer, spec: &FunctionSpec, req: &InvokeRequest) -> Attempt {
        let meta = Meta {
            from: self.me.clone(),
            pool: wire_key(&spec.pool_key),
            request_id: req.request_id.to_string(),
            invoked_arn: req.invoked_arn.to_string(),
            trace_id: req.trace_id.as_deref().map(str::to_string),
            client_context: req.client_context.as_deref().map(str::to_string),
            tail: req.tail,
            time_ms: now_ms(),
        };
        let meta = match serde_json::to_vec(&meta) {
            Ok(j) => base64::engine::general_purpose::STANDARD.encode(j),
            Err(_) => return Attempt::Declined,
        };
        let signature = self.key.sign(&meta, &req.payload);
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{PATH}", peer.address))
            .header(h::META, meta)
            .header(h::SIGNATURE, signature)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(req.payload.clone()));
        let Ok(request) = request else {
            return Attempt::Declined;
        };
        let wait = spec.timeout + ANSWER_MARGIN;
        let sent = tokio::time::timeout(wait, async {
            let resp = self.client.request(request).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes());
            Ok::<_, ForwardError>((parts, body))
        })
        .await;
        let (parts, body) = match sent {
            Err(_) => {
                return Attempt::Lost(format!(
                    "the invocation was routed to cluster node {} ({}), which did not answer within {:?}",
                    peer.id, peer.address, wait
                ))
            }
            Ok(Err(ForwardError(e))) if e.is_connect() => {
                tracing::debug!(node = %peer.id, error = %e, "cannot reach a node to route to; skipping it for a while");
                self.down
                    .lock()
                    .insert(peer.id.clone(), Instant::now() + DOWN_FOR);
                return Attempt::Declined;
            }
            Ok(Err(ForwardError(e))) => {
                return Attempt::Lost(format!(
                    "the invocation was routed to cluster node {} ({}), which failed before answering: {e}",
                    peer.id, peer.address
                ))
            }
            Ok(Ok((_, Err(e)))) => {
                return Attempt::Lost(format!(
                    "the invocation was routed to cluster node {} ({}), which failed while answering: {e}",
                    peer.id, peer.address
                ))
            }
            Ok(Ok((parts, Ok(body)))) => (parts, body),
        };
        if parts.status != StatusCode::OK {
            tracing::warn!(node = %peer.id, status = %parts.status, answer = %String::from_utf8_lossy(&body), "a node refused a routed invocation");
            return Attempt::Declined;
        }
        decode(&parts.headers, body)
    }
}

/// The client's error, made nameable for `?` inside the timeout.
struct ForwardError(hyper_util::client::legacy::Error);

impl From<hyper_util::client::legacy::Error> for ForwardError {
    fn from(e: hyper_util::client::legacy::Error) -> Self {
        Self(e)
    }
}

/// The origin's reading of a target's answer.
fn decode(headers: &HeaderMap, body: Bytes) -> Attempt {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let log_tail = || {
        header(h::LOG).and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .ok()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
        })
    };
    match header(h::OUTCOME) {
        Some(o @ ("ok" | "function-error")) => Attempt::Done(Ok(InvokeResponse {
            payload: body,
            function_error: o == "function-error",
            log_tail: log_tail(),
        })),
        Some("throttled") => match header(h::REASON).and_then(throttle_reason) {
            Some(r) => Attempt::Done(Err(InvokeError::Throttled(r))),
            None => Attempt::Declined,
        },
        Some("start-failed") => Attempt::Done(Err(InvokeError::Start(
            String::from_utf8_lossy(&body).into_owned(),
        ))),
        // `no-warm`, `shutting-down`, or an answer this version does not know.
        _ => Attempt::Declined,
    }
}

fn throttle_reason(s: &str) -> Option<ThrottleReason> {
    [
        ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
        ThrottleReason::ConcurrentInvocationLimitExceeded,
        ThrottleReason::FunctionInvocationRateLimitExceeded,
    ]
    .into_iter()
    .find(|r| r.as_str() == s)
}

/// The target's side: what the internal route needs.
#[derive(Debug, Clone)]
pub struct Target {
    /// The key forwarded calls must be signed with.
    pub key: ForwardKey,
    /// The scheduler that runs them.
    pub scheduler: Scheduler,
}

/// The internal route, to merge outside the authentication layer (it checks the
/// cluster's signature itself).
pub fn routes(target: Target) -> axum::Router {
    axum::Router::new()
        .route(PATH, post(accept))
        .with_state(target)
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(text.into()));
    *r.status_mut() = status;
    r
}

async fn accept(State(t): State<Target>, headers: HeaderMap, body: Body) -> Response<Body> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(meta_b64), Some(signature)) = (header(h::META), header(h::SIGNATURE)) else {
        return plain(
            StatusCode::FORBIDDEN,
            "forwarded invocation refused: it is not signed by a node of this cluster",
        );
    };
    let body = match http_body_util::Limited::new(body, crate::api::MAX_SYNC_PAYLOAD)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("forwarded invocation refused: cannot read its payload: {e}"),
            )
        }
    };
    if !t.key.verify(meta_b64, &body, signature) {
        return plain(
            StatusCode::FORBIDDEN,
            "forwarded invocation refused: bad signature (every node of a cluster must be given the same STRATUS_MASTER_KEY)",
        );
    }
    let meta: Meta = match base64::engine::general_purpose::STANDARD
        .decode(meta_b64)
        .ok()
        .and_then(|j| serde_json::from_slice(&j).ok())
    {
        Some(m) => m,
        None => {
            return plain(
                StatusCode::BAD_REQUEST,
                "forwarded invocation refused: its metadata is not base64 JSON",
            )
        }
    };
    let skew = (now_ms() - meta.time_ms).abs();
    if skew > MAX_SKEW_MS {
        return plain(
            StatusCode::FORBIDDEN,
            format!("forwarded invocation refused: signed {skew} ms away from this node's clock (at most {MAX_SKEW_MS} ms); synchronize the nodes' clocks"),
        );
    }
    let Some(spec) = t.scheduler.pool_spec(&pool_key(&meta.pool)) else {
        return outcome("no-warm", None, Bytes::new());
    };
    let req = InvokeRequest {
        request_id: Arc::from(meta.request_id),
        payload: body,
        invoked_arn: Arc::from(meta.invoked_arn),
        client_context: meta.client_context.map(Arc::from),
        tail: meta.tail,
        trace_id: meta.trace_id.map(Arc::from),
    };
    match t.scheduler.invoke_warm(&spec, req).await {
        Err(_) => outcome("no-warm", None, Bytes::new()),
        Ok(Ok(r)) => {
            let mut resp = outcome(
                if r.function_error {
                    "function-error"
                } else {
                    "ok"
                },
                None,
                r.payload,
            );
            if let Some(tail) = r.log_tail {
                if let Ok(v) =
                    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(tail))
                {
                    resp.headers_mut().insert(h::LOG, v);
                }
            }
            resp
        }
        Ok(Err(InvokeError::Throttled(reason))) => {
            outcome("throttled", Some(reason.as_str()), Bytes::new())
        }
        Ok(Err(InvokeError::ShuttingDown)) => outcome("shutting-down", None, Bytes::new()),
        Ok(Err(InvokeError::Start(msg))) => outcome("start-failed", None, Bytes::from(msg)),
    }
}

fn outcome(what: &'static str, reason: Option<&'static str>, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(h::OUTCOME, HeaderValue::from_static(what));
    if let Some(reason) = reason {
        r.headers_mut()
            .insert(h::REASON, HeaderValue::from_static(reason));
    }
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures_bind_the_metadata_and_the_payload_to_the_key() {
        let k = ForwardKey::from_secret(b"cluster master key");
        let sig = k.sign("meta", b"{\"a\":1}");
        assert!(k.verify("meta", b"{\"a\":1}", &sig));
        assert!(!k.verify("meta2", b"{\"a\":1}", &sig), "other metadata");
        assert!(!k.verify("meta", b"{\"a\":2}", &sig), "other payload");
        assert!(!k.verify("meta", b"{\"a\":1}", "00"), "truncated");
        assert!(!k.verify("meta", b"{\"a\":1}", "not hex"), "garbage");
        let other = ForwardKey::from_secret(b"another cluster's key");
        assert!(!other.verify("meta", b"{\"a\":1}", &sig), "another key");
    }

    #[test]
    fn answers_decode_to_the_schedulers_results() {
        let mut hm = HeaderMap::new();
        hm.insert(h::OUTCOME, HeaderValue::from_static("function-error"));
        hm.insert(
            h::LOG,
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode("tail"))
                .unwrap(),
        );
        let Attempt::Done(Ok(r)) = decode(&hm, Bytes::from_static(b"{}")) else {
            panic!("expected a result");
        };
        assert!(r.function_error);
        assert_eq!(r.log_tail.as_deref(), Some("tail"));
        assert_eq!(&r.payload[..], b"{}");

        let mut hm = HeaderMap::new();
        hm.insert(h::OUTCOME, HeaderValue::from_static("throttled"));
        hm.insert(
            h::REASON,
            HeaderValue::from_static("ReservedFunctionConcurrentInvocationLimitExceeded"),
        );
        assert!(matches!(
            decode(&hm, Bytes::new()),
            Attempt::Done(Err(InvokeError::Throttled(
                ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
            )))
        ));
        for o in ["no-warm", "shutting-down", "something new"] {
            let mut hm = HeaderMap::new();
            hm.insert(h::OUTCOME, HeaderValue::from_str(o).unwrap());
            assert!(
                matches!(decode(&hm, Bytes::new()), Attempt::Declined),
                "{o}"
            );
        }
    }
}
