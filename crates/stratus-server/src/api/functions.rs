//! Functions, versions and aliases: `/2015-03-31/functions…`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::paging::{listing, PageQuery};
use super::{json, parse_json, AppState, QualifierQuery};
use crate::error::ApiError;
use crate::model::RoutingConfig;
use crate::registry::{CodeInput, FunctionInput};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/2015-03-31/functions", upload(post(create)).get(list))
        .route("/2015-03-31/functions/", upload(post(create)).get(list))
        .route(
            "/2015-03-31/functions/{name}",
            get(get_function).delete(delete),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            upload(axum::routing::put(update_code)),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration).put(update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(publish).get(versions),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(create_alias).get(list_aliases),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(get_alias).put(update_alias).delete(delete_alias),
        )
}

/// CreateFunction and UpdateFunctionCode carry the zip: Lambda's larger limit.
fn upload(route: axum::routing::MethodRouter<AppState>) -> axum::routing::MethodRouter<AppState> {
    super::limits::limited(route, super::limits::CODE_UPLOAD_BODY_BYTES)
}

fn respond<T: serde::Serialize>(status: StatusCode, r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => json(status, &v),
        Err(e) => e.into_response(),
    }
}

async fn create(State(s): State<AppState>, body: Bytes) -> Response {
    let r = match parse_json::<FunctionInput>(&body) {
        Ok(input) => s.db(move |r| r.create(input)).await,
        Err(e) => Err(e),
    };
    respond(StatusCode::CREATED, r)
}

async fn list(State(s): State<AppState>, Query(page): Query<PageQuery>) -> Response {
    match page.page(s.registry.list()) {
        Ok((items, next)) => json(StatusCode::OK, &listing("Functions", items, next)),
        Err(e) => e.into_response(),
    }
}

async fn get_function(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
    headers: HeaderMap,
    presigner: Option<axum::Extension<crate::auth::Presigner>>,
) -> Response {
    let r = s.registry.describe(&name, q.qualifier.as_deref()).map(|f| {
        let location = format!(
            "{}/stratus/v1/code/{}",
            super::base_url(&headers, &s.registry.identity.endpoint_url),
            f.code_hex
        );
        // Presigned with the caller's key for 10 minutes, as Lambda's S3 URL is, so
        // a plain GET downloads it.
        let location = match &presigner {
            Some(axum::Extension(p)) => p.presign_get(&location, 600).unwrap_or(location),
            None => location,
        };
        let mut out = json!({
            "Configuration": f.config,
            "Code": { "RepositoryType": "S3", "Location": location },
            "Tags": f.tags,
        });
        if let Some(r) = f.reserved {
            out["Concurrency"] = json!({ "ReservedConcurrentExecutions": r });
        }
        out
    });
    respond(StatusCode::OK, r)
}

async fn get_configuration(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
) -> Response {
    respond(
        StatusCode::OK,
        s.registry
            .get(&name, q.qualifier.as_deref())
            .map(|(c, _)| c),
    )
}

async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
) -> Response {
    match s.db(move |r| r.delete(&name, q.qualifier.as_deref())).await {
        Ok(()) => {
            // Its schedules, routes and queue pollers stop with it.
            s.reload_triggers().await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn update_code(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let r = match parse_json::<CodeInput>(&body) {
        Ok(code) => s.db(move |r| r.update_code(&name, code)).await,
        Err(e) => Err(e),
    };
    respond(StatusCode::OK, r)
}

async fn update_configuration(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let r = match parse_json::<FunctionInput>(&body) {
        Ok(input) => s.db(move |r| r.update_configuration(&name, input)).await,
        Err(e) => Err(e),
    };
    respond(StatusCode::OK, r)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    description: Option<String>,
    code_sha256: Option<String>,
    revision_id: Option<String>,
}

async fn publish(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let r = match parse_json::<PublishInput>(&body) {
        Ok(input) => {
            s.db(move |r| {
                let pre = crate::registry::Preconditions {
                    code_sha256: input.code_sha256,
                    revision_id: input.revision_id,
                };
                r.publish(&name, input.description, pre)
            })
            .await
        }
        Err(e) => Err(e),
    };
    respond(StatusCode::CREATED, r)
}

async fn versions(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    let r = s
        .registry
        .versions(&name)
        .and_then(|v| page.page(v))
        .map(|(items, next)| listing("Versions", items, next));
    respond(StatusCode::OK, r)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

async fn create_alias(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let r = async {
        let a = parse_json::<AliasInput>(&body)?;
        let alias = a
            .name
            .ok_or_else(|| ApiError::invalid("Name is required"))?;
        let version = a
            .function_version
            .ok_or_else(|| ApiError::invalid("FunctionVersion is required"))?;
        s.db(move |r| r.create_alias(&name, &alias, &version, a.description, a.routing_config))
            .await
    }
    .await;
    respond(StatusCode::CREATED, r)
}

async fn list_aliases(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    let r = s
        .registry
        .list_aliases(&name)
        .and_then(|a| page.page(a))
        .map(|(items, next)| listing("Aliases", items, next));
    respond(StatusCode::OK, r)
}

async fn get_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Response {
    respond(StatusCode::OK, s.registry.get_alias(&name, &alias))
}

async fn update_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let r = match parse_json::<AliasInput>(&body) {
        Ok(a) => {
            s.db(move |r| {
                r.update_alias(
                    &name,
                    &alias,
                    a.function_version,
                    a.description,
                    a.routing_config,
                    a.revision_id,
                )
            })
            .await
        }
        Err(e) => Err(e),
    };
    respond(StatusCode::OK, r)
}

async fn delete_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Response {
    match s.db(move |r| r.delete_alias(&name, &alias)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
