//! Function tags: TagResource, UntagResource and ListTags on `/2017-03-31/tags/{ARN}`.
//! The SDKs percent-encode the ARN (`arn%3Aaws%3Alambda…`); the path extractor
//! decodes it, so the raw form works too.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;

use super::{json, parse_json, AppState};
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/2017-03-31/tags/{arn}", get(list).post(tag).delete(untag))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    tags: Option<BTreeMap<String, String>>,
}

async fn list(State(s): State<AppState>, Path(arn): Path<String>) -> Response {
    match s.registry.list_tags(&arn) {
        Ok(tags) => json(StatusCode::OK, &json!({ "Tags": tags })),
        Err(e) => e.into_response(),
    }
}

async fn tag(State(s): State<AppState>, Path(arn): Path<String>, body: Bytes) -> Response {
    let r = async {
        let tags = parse_json::<TagInput>(&body)?
            .tags
            .ok_or_else(|| ApiError::validation("null", "tags", "Member must not be null"))?;
        s.db(move |r| r.tag_resource(&arn, tags)).await
    }
    .await;
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn untag(
    State(s): State<AppState>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let keys = tag_keys(query.as_deref().unwrap_or(""));
    match s.db(move |r| r.untag_resource(&arn, &keys)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every `tagKeys=` of a query string (the parameter repeats, once per key).
fn tag_keys(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "tagKeys")
        .map(|(_, v)| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_tag_keys_are_decoded() {
        assert_eq!(
            tag_keys("tagKeys=a&other=x&tagKeys=team%3Aowner&tagKeys=two+words"),
            ["a", "team:owner", "two words"]
        );
        assert!(tag_keys("").is_empty());
    }
}
