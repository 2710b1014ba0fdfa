//! Stratus's deployment API under `/stratus/v1`: code blobs by sha256 (uploaded, and
//! downloaded as GetFunction's `Code.Location`), service deployments (streamed
//! progress), history, rollback, info and removal.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::limits::{limited, BLOB_BODY_BYTES, DEPLOY_BODY_BYTES};
use super::{json, parse_json, AppState};
use crate::deploy::{self, DeployRequest, Event};
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/stratus/v1/blobs/{sha}",
            limited(put(put_blob), BLOB_BODY_BYTES)
                .get(has_blob)
                .head(has_blob),
        )
        .route("/stratus/v1/code/{sha}", get(download_code))
        .route(
            "/stratus/v1/services/{service}/{stage}",
            get(info).delete(remove),
        )
        .route(
            "/stratus/v1/services/{service}/{stage}/deployments",
            limited(post(deploy), DEPLOY_BODY_BYTES).get(history),
        )
        .route(
            "/stratus/v1/services/{service}/{stage}/rollback",
            post(rollback),
        )
}

async fn has_blob(State(s): State<AppState>, Path(sha): Path<String>) -> Response {
    if !stratus_package::is_sha256_hex(&sha) {
        // As a download of such a name answers: there is no such package.
        return ApiError::not_found(format!(
            "No code package '{sha}': a package is named by its sha256, 64 lowercase hex digits"
        ))
        .into_response();
    }
    if s.registry.has_blob(&sha) {
        StatusCode::OK.into_response()
    } else {
        ApiError::not_found(format!("no code package {sha}")).into_response()
    }
}

async fn put_blob(State(s): State<AppState>, Path(sha): Path<String>, body: Bytes) -> Response {
    match s.db(move |r| r.put_blob(&sha, &body)).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A stored code package, as GetFunction's `Code.Location` points at it.
/// Streams a stored package (up to 50 MB) in 64 KB chunks read on a blocking
/// thread, rather than reading it whole into memory.
async fn download_code(State(s): State<AppState>, Path(sha): Path<String>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let name = format!("attachment; filename=\"{sha}.zip\"");
    let (mut file, len) = match s.db(move |r| r.open_blob(&sha)).await {
        Ok(opened) => opened,
        Err(e) => return e.into_response(),
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let chunk = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // The client went away, or the read failed (the body ends in an error,
            // so the response is cut short rather than silently truncated).
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    (
        StatusCode::OK,
        [
            ("content-type", "application/zip".to_string()),
            ("content-disposition", name),
            ("content-length", len.to_string()),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// Runs a deployment on its own thread and streams its events as NDJSON; the
/// deployment continues even if the client goes away.
///
/// A deployment makes many registry and store calls, each a SQLite write; it runs
/// as a whole on a blocking thread (driving its few awaits — progress events,
/// waiting for provisioned environments — through the runtime's handle), so no
/// async worker that carries invocations waits on the database.
fn stream_deployment(s: AppState, service: String, stage: String, req: DeployRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(64);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let last = match deploy::apply(
                &s.registry,
                &s.autoscaler,
                &s.stores,
                &s.queues,
                &service,
                &stage,
                req,
                &tx,
            )
            .await
            {
                Ok(result) => Event::Done { result },
                Err((step, e)) => Event::Error {
                    step,
                    error_type: e.error_type().to_string(),
                    message: e.message,
                },
            };
            // Schedules (and other event sources) follow the deployment before the
            // client hears it is done.
            // A failure is logged; the previous event sources stay.
            let _ = s.triggers.reload(&s.registry);
            let _ = tx.send(last).await;
        })
    });
    let lines = ReceiverStream::new(rx).map(|ev| {
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    (
        StatusCode::OK,
        [("content-type", "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

async fn deploy(
    State(s): State<AppState>,
    Path((service, stage)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(e) = deploy::check_service_stage(&service, &stage) {
        return e.into_response();
    }
    match parse_json::<DeployRequest>(&body) {
        Ok(req) => stream_deployment(s, service, stage, req),
        Err(e) => e.into_response(),
    }
}

async fn history(
    State(s): State<AppState>,
    Path((service, stage)): Path<(String, String)>,
) -> Response {
    if let Err(e) = deploy::check_service_stage(&service, &stage) {
        return e.into_response();
    }
    let (svc, stg) = (service.clone(), stage.clone());
    match s
        .off_async(move |s| Ok(s.stores.deployments.deployments(&svc, &stg)?))
        .await
    {
        Ok(rows) => {
            let list: Vec<Value> = rows
                .into_iter()
                .map(|(ts, _, result)| {
                    let r: Value = serde_json::from_str(&result).unwrap_or(Value::Null);
                    json!({ "timestamp": ts, "functions": r["functions"] })
                })
                .collect();
            json(
                StatusCode::OK,
                &json!({ "service": service, "stage": stage, "deployments": list }),
            )
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct RollbackInput {
    timestamp: i64,
}

async fn rollback(
    State(s): State<AppState>,
    Path((service, stage)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(e) = deploy::check_service_stage(&service, &stage) {
        return e.into_response();
    }
    let input = match parse_json::<RollbackInput>(&body) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let (svc, stg) = (service.clone(), stage.clone());
    let rows = match s
        .off_async(move |s| Ok(s.stores.deployments.deployments(&svc, &stg)?))
        .await
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some((_, request, _)) = rows.into_iter().find(|(ts, _, _)| *ts == input.timestamp) else {
        return ApiError::not_found(format!(
            "no deployment of {service} stage {stage} at timestamp {} (see `stratus deploy list`)",
            input.timestamp
        ))
        .into_response();
    };
    match serde_json::from_str::<DeployRequest>(&request) {
        Ok(req) => stream_deployment(
            s,
            service,
            stage,
            DeployRequest {
                partial: false,
                force: false,
                ..req
            },
        ),
        Err(e) => ApiError::service(format!("corrupt deployment record: {e}")).into_response(),
    }
}

async fn info(
    State(s): State<AppState>,
    Path((service, stage)): Path<(String, String)>,
) -> Response {
    if let Err(e) = deploy::check_service_stage(&service, &stage) {
        return e.into_response();
    }
    s.off_async(move |s| Ok(info_of(s, service, stage)))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The service stage's functions and their state (reads the stores: run off the
/// async workers).
fn info_of(s: &AppState, service: String, stage: String) -> Response {
    let functions = match s.stores.deployments.service_functions(&service, &stage) {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut out = Vec::new();
    for (key, name) in functions {
        let Some(snap) = s.registry.snapshot(&name) else {
            continue;
        };
        let mut provisioned = serde_json::Map::new();
        for q in snap.provisioned.keys() {
            if let Ok((st, _)) = s.registry.get_provisioned(&name, Some(q)) {
                provisioned.insert(q.clone(), json!({ "requested": st.requested, "available": st.available, "status": st.status }));
            }
        }
        let endpoints: Vec<Value> = s
            .triggers
            .routes
            .list()
            .into_iter()
            .filter(|(_, _, _, f)| *f == name)
            .map(|(kind, method, path, _)| {
                let base = s.registry.identity.gateway_url.clone().unwrap_or_default();
                json!({ "kind": kind, "method": method, "url": format!("{base}{path}") })
            })
            .collect();
        let schedules: Vec<Value> = s
            .triggers
            .next_firings(&name)
            .into_iter()
            .map(|(expr, next)| json!({ "expression": expr, "next": next.map(stratus_schedule::format_time) }))
            .collect();
        let aliases: serde_json::Map<String, Value> = snap
            .aliases
            .iter()
            .map(|(a, c)| (a.clone(), Value::from(c.function_version.clone())))
            .collect();
        out.push(json!({
            "key": key,
            "name": name,
            "runtime": snap.latest.runtime,
            "handler": snap.latest.handler,
            "memorySize": snap.latest.memory_size,
            "timeout": snap.latest.timeout,
            "ephemeralStorage": snap.latest.ephemeral_storage.size,
            "network": if snap.latest.egress { "egress" } else { "isolated" },
            "codeSha256": snap.code_hex,
            "lastModified": snap.latest.last_modified,
            "version": snap.last_version.map(|(c, _)| c.version),
            "aliases": aliases,
            "reservedConcurrency": snap.reserved,
            "provisionedConcurrency": provisioned,
            "schedules": schedules,
            "endpoints": endpoints,
        }));
    }
    let deployments = s
        .stores
        .deployments
        .deployments(&service, &stage)
        .map(|d| d.len())
        .unwrap_or(0);
    if out.is_empty() && deployments == 0 {
        return ApiError::not_found(format!("service {service} has no stage {stage} deployed"))
            .into_response();
    }
    json(
        StatusCode::OK,
        &json!({ "service": service, "stage": stage, "endpoint": s.registry.identity.endpoint_url, "functions": out, "deployments": deployments }),
    )
}

async fn remove(
    State(s): State<AppState>,
    Path((service, stage)): Path<(String, String)>,
) -> Response {
    if let Err(e) = deploy::check_service_stage(&service, &stage) {
        return e.into_response();
    }
    // The queues the last deployment declared go with the service.
    let (svc, stg) = (service.clone(), stage.clone());
    let declared: Vec<String> = s
        .off_async(move |s| Ok(s.stores.deployments.deployments(&svc, &stg)?))
        .await
        .ok()
        .and_then(|d| d.last().cloned())
        .and_then(|(_, req, _)| serde_json::from_str::<DeployRequest>(&req).ok())
        .map(|r| r.queues.into_iter().map(|q| q.name).collect())
        .unwrap_or_default();
    for q in declared {
        let _ = s.queues.delete_queue(&q).await;
    }
    let removed = s
        .off_async(move |s| {
            let removed = deploy::remove(
                &s.registry,
                &s.autoscaler,
                &*s.stores.deployments,
                &service,
                &stage,
            )?;
            // A failure is logged; the previous event sources stay.
            let _ = s.triggers.reload(&s.registry);
            Ok(removed)
        })
        .await;
    match removed {
        Ok(removed) => json(StatusCode::OK, &json!({ "removed": removed })),
        Err(e) => e.into_response(),
    }
}
