//! Put/Get/Update/Delete/ListFunctionEventInvokeConfig: `/2019-09-25/functions/{name}/event-invoke-config`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{json, parse_json, AppState, QualifierQuery};
use crate::model::EventInvokeConfig;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            get(get_config)
                .put(put_config)
                .post(update_config)
                .delete(delete_config),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(list_configs),
        )
}

async fn put_config(
    s: State<AppState>,
    name: Path<String>,
    q: Query<QualifierQuery>,
    body: Bytes,
) -> Response {
    store_config(s, name, q, body, false)
}

async fn update_config(
    s: State<AppState>,
    name: Path<String>,
    q: Query<QualifierQuery>,
    body: Bytes,
) -> Response {
    store_config(s, name, q, body, true)
}

/// Put (`merge` false) or Update (`merge` true: fields left out are kept).
fn store_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    body: Bytes,
    merge: bool,
) -> Response {
    let r = parse_json::<EventInvokeConfig>(&body).and_then(|c| {
        s.registry
            .put_event_invoke_config(&name, q.qualifier.as_deref(), c, merge)
    });
    match r {
        Ok(c) => json(StatusCode::OK, &c),
        Err(e) => e.into_response(),
    }
}

async fn get_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Response {
    match s
        .registry
        .get_event_invoke_config(&name, q.qualifier.as_deref())
    {
        Ok(c) => json(StatusCode::OK, &c),
        Err(e) => e.into_response(),
    }
}

async fn delete_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Response {
    match s
        .registry
        .delete_event_invoke_config(&name, q.qualifier.as_deref())
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_configs(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.registry.list_event_invoke_configs(&name) {
        Ok(list) => json(
            StatusCode::OK,
            &json!({ "FunctionEventInvokeConfigs": list }),
        ),
        Err(e) => e.into_response(),
    }
}
