//! `GET /stratus/v1/cluster`: the nodes of the cluster, their health, environments
//! and load (`stratus cluster status`). A single node answers with itself and
//! `"mode": "single"`. IAM action `stratus:GetCluster` on `*`.
//!
//! `DELETE /stratus/v1/cluster/nodes/{id}` (`stratus cluster forget ID`): deletes
//! the row of a stopped or dead node; a healthy node is refused (409), an unknown
//! id is 404, a single node 400. IAM action `stratus:ForgetNode` on
//! `arn:aws:stratus:{region}:{account}:node/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;

use super::{json, AppState};
use crate::cluster::{Forget, NodeInfo, DEAD_AFTER};
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/stratus/v1/cluster", get(status))
        .route("/stratus/v1/cluster/nodes/{id}", delete(forget))
}

async fn forget(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let answer = match s.membership.forget(&id).await {
        Err(e) => ApiError::service(format!("cluster state store unavailable: {e}")),
        Ok(None) => ApiError::invalid(format!(
            "cannot forget node {id}: this is a single node (stratus server without --cluster), which keeps no node rows"
        )),
        Ok(Some(Forget::Unknown)) => ApiError::not_found(format!(
            "no node {id} in the cluster (stratus cluster status lists them)"
        )),
        Ok(Some(Forget::Live { address, age_ms })) => ApiError::conflict(format!(
            "node {id} at {address} is healthy (last heartbeat {age_ms} ms ago): stop it first; only a stopped node, or one without a heartbeat for {} s, can be forgotten",
            DEAD_AFTER.as_secs()
        )),
        Ok(Some(Forget::Forgotten { health })) => {
            return json(
                StatusCode::OK,
                &serde_json::json!({ "forgotten": id, "health": health }),
            )
        }
    };
    answer.into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    match s.membership.status(NodeInfo::local(&s.scheduler)).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => {
            ApiError::service(format!("cluster state store unavailable: {e}")).into_response()
        }
    }
}
