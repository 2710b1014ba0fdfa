//! `GET /stratus/v1/cluster`: the nodes of the cluster, their health, environments
//! and load (`stratus cluster status`). A single node answers with itself and
//! `"mode": "single"`. IAM action `stratus:GetCluster` on `*`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{json, AppState};
use crate::cluster::NodeInfo;
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/stratus/v1/cluster", get(status))
}

async fn status(State(s): State<AppState>) -> Response {
    match s.membership.status(NodeInfo::local(&s.scheduler)).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => {
            ApiError::service(format!("cluster state store unavailable: {e}")).into_response()
        }
    }
}
