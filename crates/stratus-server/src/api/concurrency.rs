//! Reserved and provisioned concurrency, and account settings.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use stratus_scheduler::ProvisionedStatus;

use super::{json, parse_json, AppState, QualifierQuery};
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        // PutFunctionConcurrency and DeleteFunctionConcurrency live under 2017-10-31,
        // GetFunctionConcurrency under 2019-09-30; accept every method on both.
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(put_reserved).get(get_reserved).delete(delete_reserved),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            put(put_reserved).get(get_reserved).delete(delete_reserved),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            put(put_provisioned)
                .get(get_provisioned)
                .delete(delete_provisioned),
        )
        .route("/2016-08-19/account-settings", get(account_settings))
        .route("/2016-08-19/account-settings/", get(account_settings))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReservedInput {
    reserved_concurrent_executions: Option<i64>,
}

async fn put_reserved(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let r = async {
        let n = parse_json::<ReservedInput>(&body)?
            .reserved_concurrent_executions
            .ok_or_else(|| ApiError::invalid("ReservedConcurrentExecutions is required"))?;
        s.db(move |r| r.put_reserved(&name, n)).await
    }
    .await;
    match r {
        Ok(n) => json(
            StatusCode::OK,
            &json!({ "ReservedConcurrentExecutions": n }),
        ),
        Err(e) => e.into_response(),
    }
}

async fn get_reserved(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.registry.get_reserved(&name) {
        Ok(Some(n)) => json(
            StatusCode::OK,
            &json!({ "ReservedConcurrentExecutions": n }),
        ),
        Ok(None) => json(StatusCode::OK, &json!({})),
        Err(e) => e.into_response(),
    }
}

async fn delete_reserved(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.db(move |r| r.delete_reserved(&name)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProvisionedInput {
    provisioned_concurrent_executions: Option<i64>,
}

fn provisioned_body(st: ProvisionedStatus, modified: String) -> serde_json::Value {
    let mut v = json!({
        "RequestedProvisionedConcurrentExecutions": st.requested,
        "AvailableProvisionedConcurrentExecutions": st.available,
        "AllocatedProvisionedConcurrentExecutions": st.available,
        "Status": st.status,
        "LastModified": modified,
    });
    if let Some(reason) = st.reason {
        v["StatusReason"] = reason.into();
    }
    v
}

async fn put_provisioned(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
    body: Bytes,
) -> Response {
    let r = async {
        let n = parse_json::<ProvisionedInput>(&body)?
            .provisioned_concurrent_executions
            .ok_or_else(|| ApiError::invalid("ProvisionedConcurrentExecutions is required"))?;
        s.db(move |r| r.put_provisioned(&name, q.qualifier.as_deref(), n))
            .await
    }
    .await;
    match r {
        Ok((st, modified)) => json(StatusCode::ACCEPTED, &provisioned_body(st, modified)),
        Err(e) => e.into_response(),
    }
}

async fn get_provisioned(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
) -> Response {
    match s.registry.get_provisioned(&name, q.qualifier.as_deref()) {
        Ok((st, modified)) => json(StatusCode::OK, &provisioned_body(st, modified)),
        Err(e) => e.into_response(),
    }
}

async fn delete_provisioned(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
) -> Response {
    match s
        .db(move |r| r.delete_provisioned(&name, q.qualifier.as_deref()))
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn account_settings(State(s): State<AppState>) -> Response {
    let settings = s.scheduler.settings();
    let (count, size) = s.registry.usage();
    json(
        StatusCode::OK,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": 80530636800u64,
                "CodeSizeUnzipped": 262144000u64,
                "CodeSizeZipped": 52428800u64,
                "ConcurrentExecutions": settings.account_concurrency,
                "UnreservedConcurrentExecutions": s.scheduler.unreserved_available("") + settings.unreserved_minimum,
            },
            "AccountUsage": { "TotalCodeSize": size, "FunctionCount": count },
        }),
    )
}
