//! `/stratus/v1/keys…`: the control API for access keys.
//!
//! - `POST /stratus/v1/keys` `{"UserName", "PolicyName"?, "PolicyDocument"?}` → 201
//!   with the new key (the only time its secret is shown);
//! - `GET /stratus/v1/keys` → every key, without secrets;
//! - `DELETE /stratus/v1/keys/{AccessKeyId}` → 204;
//! - `PUT /stratus/v1/keys/{AccessKeyId}/policies/{PolicyName}` with the policy
//!   document as the body → 200 (attach, or replace);
//! - `DELETE /stratus/v1/keys/{AccessKeyId}/policies/{PolicyName}` → 204 (detach).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::Auth;
use crate::error::{blocking, ApiError};

pub(super) fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/stratus/v1/keys", axum::routing::post(create).get(list))
        .route("/stratus/v1/keys/{id}", delete(remove))
        .route(
            "/stratus/v1/keys/{id}/policies/{policy}",
            put(attach).delete(detach),
        )
        .with_state(auth)
}

/// IAM's rule for user and policy names: `[\w+=,.@-]`.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A policy document must be one the policy engine (`stratus-iam`) can evaluate:
/// refused here, saying where, rather than silently allowing less later.
fn check_policy(doc: &str) -> Result<(), ApiError> {
    stratus_iam::Policy::parse(doc)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(format!("The policy document is malformed: {e}")))
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKey {
    user_name: String,
    policy_name: Option<String>,
    policy_document: Option<String>,
}

async fn create(State(auth): State<Arc<Auth>>, body: Bytes) -> Response {
    let req: CreateKey = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_content(format!("Could not parse request body into json: {e}"))
                .into_response()
        }
    };
    if !valid_name(&req.user_name, 64) {
        return ApiError::validation(
            &req.user_name,
            "userName",
            "Member must satisfy regular expression pattern: [\\w+=,.@-]{1,64}",
        )
        .into_response();
    }
    let mut policies = BTreeMap::new();
    if let Some(doc) = req.policy_document {
        if let Err(e) = check_policy(&doc) {
            return e.into_response();
        }
        let name = req.policy_name.unwrap_or_else(|| "policy".into());
        if !valid_name(&name, 128) {
            return ApiError::validation(
                &name,
                "policyName",
                "Member must satisfy regular expression pattern: [\\w+=,.@-]{1,128}",
            )
            .into_response();
        }
        policies.insert(name, doc);
    }
    let user = req.user_name;
    let r = blocking(move || Ok(auth.create_key(&user, policies)?)).await;
    match r {
        Ok(k) => json(
            StatusCode::CREATED,
            json!({
                "AccessKey": {
                    "AccessKeyId": k.id,
                    "SecretAccessKey": k.secret,
                    "UserName": k.name,
                    "Status": "Active",
                    "CreateDate": k.created,
                    "PolicyNames": k.policies.keys().collect::<Vec<_>>(),
                }
            }),
        ),
        Err(e) => e.into_response(),
    }
}

async fn list(State(auth): State<Arc<Auth>>) -> Response {
    let keys: Vec<serde_json::Value> = auth
        .keys()
        .into_iter()
        .map(|k| {
            json!({
                "AccessKeyId": k.id,
                "UserName": k.name,
                "Arn": auth.user_arn(&k.name),
                "Status": "Active",
                "CreateDate": k.created,
                "PolicyNames": k.policies.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    json(StatusCode::OK, json!({ "AccessKeys": keys }))
}

fn no_such_key(id: &str) -> ApiError {
    ApiError::not_found(format!("The Access Key with id {id} cannot be found."))
}

async fn remove(State(auth): State<Arc<Auth>>, Path(id): Path<String>) -> Response {
    let lookup = id.clone();
    match blocking(move || Ok(auth.delete_key(&lookup)?)).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => no_such_key(&id).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn attach(
    State(auth): State<Arc<Auth>>,
    Path((id, policy)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !valid_name(&policy, 128) {
        return ApiError::validation(
            &policy,
            "policyName",
            "Member must satisfy regular expression pattern: [\\w+=,.@-]{1,128}",
        )
        .into_response();
    }
    let doc = match std::str::from_utf8(&body) {
        Ok(d) => d.to_string(),
        Err(_) => return ApiError::invalid("The policy document is not UTF-8").into_response(),
    };
    if let Err(e) = check_policy(&doc) {
        return e.into_response();
    }
    let key = id.clone();
    match blocking(move || Ok(auth.set_policy(&key, &policy, Some(&doc))?)).await {
        Ok(Some(_)) => json(StatusCode::OK, json!({})),
        Ok(None) => no_such_key(&id).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn detach(
    State(auth): State<Arc<Auth>>,
    Path((id, policy)): Path<(String, String)>,
) -> Response {
    let (key, name) = (id.clone(), policy.clone());
    match blocking(move || Ok(auth.set_policy(&key, &name, None)?)).await {
        Ok(Some(true)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Some(false)) => {
            ApiError::not_found(format!("The access key {id} has no policy named {policy}."))
                .into_response()
        }
        Ok(None) => no_such_key(&id).into_response(),
        Err(e) => e.into_response(),
    }
}
