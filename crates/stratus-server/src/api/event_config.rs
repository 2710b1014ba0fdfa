//! Put/Get/Update/Delete/ListFunctionEventInvokeConfig: `/2019-09-25/functions/{name}/event-invoke-config`.

use axum::body::Bytes;
use axum::extract::{Path, State};
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
    q: QualifierQuery,
    body: Bytes,
) -> Response {
    store_config(s, name, q, body, false).await
}

async fn update_config(
    s: State<AppState>,
    name: Path<String>,
    q: QualifierQuery,
    body: Bytes,
) -> Response {
    store_config(s, name, q, body, true).await
}

/// Put (`merge` false) or Update (`merge` true: fields left out are kept).
async fn store_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
    body: Bytes,
    merge: bool,
) -> Response {
    let r = match parse_json::<EventInvokeConfig>(&body) {
        Ok(c) => {
            s.db(move |r| r.put_event_invoke_config(&name, q.qualifier.as_deref(), c, merge))
                .await
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(c) => json(StatusCode::OK, &c),
        Err(e) => e.into_response(),
    }
}

async fn get_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
) -> Response {
    match s
        .db(move |r| r.get_event_invoke_config(&name, q.qualifier.as_deref()))
        .await
    {
        Ok(c) => json(StatusCode::OK, &c),
        Err(e) => e.into_response(),
    }
}

async fn delete_config(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
) -> Response {
    match s
        .db(move |r| r.delete_event_invoke_config(&name, q.qualifier.as_deref()))
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_configs(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.db(move |r| r.list_event_invoke_configs(&name)).await {
        Ok(list) => json(
            StatusCode::OK,
            &json!({ "FunctionEventInvokeConfigs": list }),
        ),
        Err(e) => e.into_response(),
    }
}
