//! The event source mapping API (SQS sources of this server's queues):
//! `/2015-03-31/event-source-mappings/`. Mappings made here run beside the ones
//! deployed from serverless.yml `sqs` events.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::paging::{listing, PageQuery};
use super::{json, parse_json, AppState};
use crate::error::ApiError;
use crate::model::new_uuid;
use crate::registry::parse_function_ref;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/2015-03-31/event-source-mappings", get(list).post(create))
        .route("/2015-03-31/event-source-mappings/", get(list).post(create))
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(get_one).put(update).delete(delete),
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MappingInput {
    function_name: Option<String>,
    event_source_arn: Option<String>,
    batch_size: Option<i64>,
    enabled: Option<bool>,
    maximum_batching_window_in_seconds: Option<i64>,
    function_response_types: Option<Vec<String>>,
}

fn find(s: &AppState, uuid: &str) -> Result<Value, ApiError> {
    s.stores.mappings.event_source_mappings()?
        .into_iter()
        .find(|m| m["UUID"] == uuid)
        .ok_or_else(|| ApiError::not_found(format!("The resource you requested does not exist. (Service: Lambda, Status Code: 404, Request ID: {uuid})")))
}

/// Applies the input to a mapping, validating it as Lambda does.
fn apply(s: &AppState, m: &mut Value, input: MappingInput) -> Result<(), ApiError> {
    if let Some(f) = input.function_name {
        let (name, _) = parse_function_ref(&f)?;
        if s.registry.snapshot(&name).is_none() {
            return Err(ApiError::not_found(format!(
                "Function not found: {}",
                s.registry.identity.function_arn(&name)
            )));
        }
        m["FunctionArn"] = s.registry.identity.function_arn(&name).into();
        m["FunctionName"] = name.into();
    }
    if let Some(n) = input.batch_size {
        if !(1..=10_000).contains(&n) {
            return Err(ApiError::validation(
                &n.to_string(),
                "batchSize",
                "Member must have value less than or equal to 10000 and greater than or equal to 1",
            ));
        }
        m["BatchSize"] = n.into();
    }
    if let Some(w) = input.maximum_batching_window_in_seconds {
        if !(0..=300).contains(&w) {
            return Err(ApiError::validation(
                &w.to_string(),
                "maximumBatchingWindowInSeconds",
                "Member must have value less than or equal to 300 and greater than or equal to 0",
            ));
        }
        m["MaximumBatchingWindowInSeconds"] = w.into();
    }
    if m["BatchSize"].as_i64().unwrap_or(10) > 10
        && m["MaximumBatchingWindowInSeconds"].as_i64().unwrap_or(0) < 1
    {
        return Err(ApiError::invalid("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"));
    }
    if let Some(e) = input.enabled {
        m["State"] = if e { "Enabled" } else { "Disabled" }.into();
    }
    if let Some(t) = input.function_response_types {
        if t.iter().any(|t| t != "ReportBatchItemFailures") {
            return Err(ApiError::validation(
                &format!("{t:?}"),
                "functionResponseTypes",
                "Member must satisfy enum value set: [ReportBatchItemFailures]",
            ));
        }
        m["FunctionResponseTypes"] = json!(t);
    }
    m["LastModified"] = (crate::logs::now_ms() as f64 / 1000.0).into();
    Ok(())
}

async fn create(State(s): State<AppState>, body: Bytes) -> Response {
    let r = async {
        let input: MappingInput = parse_json(&body)?;
        let arn = input.event_source_arn.clone().ok_or_else(|| ApiError::invalid("EventSourceArn is required"))?;
        if input.function_name.is_none() {
            return Err(ApiError::invalid("FunctionName is required"));
        }
        let Some(queue) = s.queues.name_from_arn(&arn) else {
            return Err(ApiError::invalid(format!("Unsupported event source: {arn} (Stratus maps SQS queues of this server)")));
        };
        if !s.queues.exists(&queue).await.unwrap_or(false) {
            return Err(ApiError::invalid(format!("Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue {queue} does not exist")));
        }
        let m = json!({
            "UUID": new_uuid(),
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 0,
            "EventSourceArn": arn,
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "LastProcessingResult": "No records processed",
            "FunctionResponseTypes": [],
        });
        s.off_async(move |s| create_stored(s, m, input)).await
    }
    .await;
    match r {
        Ok(m) => json(StatusCode::ACCEPTED, &public(m)),
        Err(e) => e.into_response(),
    }
}

/// CreateEventSourceMapping's checks against the stored mappings, and the write.
fn create_stored(s: &AppState, mut m: Value, input: MappingInput) -> Result<Value, ApiError> {
    {
        apply(s, &mut m, input)?;
        let function = m["FunctionName"].as_str().unwrap_or_default().to_string();
        let existing = s.stores.mappings.event_source_mappings()?;
        if let Some(dup) = existing
            .iter()
            .find(|e| e["FunctionName"] == function && e["EventSourceArn"] == m["EventSourceArn"])
        {
            return Err(ApiError::conflict(format!(
                "An event source mapping with SQS arn (\" {} \") and function (\" {function} \") already exists. Please update or delete the existing mapping with UUID {}",
                m["EventSourceArn"].as_str().unwrap_or_default(),
                dup["UUID"].as_str().unwrap_or_default()
            )));
        }
        s.stores.mappings.put_event_source_mapping(
            m["UUID"].as_str().unwrap_or_default(),
            &function,
            Some(&m),
        )?;
        // A failure is logged; the previous event sources stay.
        let _ = s.triggers.reload(&s.registry);
        Ok(m)
    }
}

/// The API shape (the stored copy also keeps `FunctionName`).
fn public(mut m: Value) -> Value {
    if let Some(o) = m.as_object_mut() {
        o.remove("FunctionName");
    }
    m
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(rename = "FunctionName")]
    function_name: Option<String>,
    #[serde(rename = "EventSourceArn")]
    event_source_arn: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let wanted = q
        .function_name
        .as_deref()
        .map(parse_function_ref)
        .transpose();
    let wanted = match wanted {
        Ok(w) => w.map(|(n, _)| n),
        Err(e) => return e.into_response(),
    };
    match s
        .off_async(|s| Ok(s.stores.mappings.event_source_mappings()?))
        .await
    {
        Ok(all) => {
            let list: Vec<Value> = all
                .into_iter()
                .filter(|m| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| m["FunctionName"] == w.as_str())
                })
                .filter(|m| {
                    q.event_source_arn
                        .as_ref()
                        .is_none_or(|a| m["EventSourceArn"] == a.as_str())
                })
                .map(public)
                .collect();
            match q.page.page(list) {
                Ok((items, next)) => {
                    json(StatusCode::OK, &listing("EventSourceMappings", items, next))
                }
                Err(e) => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn get_one(State(s): State<AppState>, Path(uuid): Path<String>) -> Response {
    match s.off_async(move |s| find(s, &uuid)).await {
        Ok(m) => json(StatusCode::OK, &public(m)),
        Err(e) => e.into_response(),
    }
}

async fn update(State(s): State<AppState>, Path(uuid): Path<String>, body: Bytes) -> Response {
    let r = s
        .off_async(move |s| {
            let input: MappingInput = parse_json(&body)?;
            let mut m = find(s, &uuid)?;
            apply(s, &mut m, input)?;
            let function = m["FunctionName"].as_str().unwrap_or_default().to_string();
            s.stores
                .mappings
                .put_event_source_mapping(&uuid, &function, Some(&m))?;
            // A failure is logged; the previous event sources stay.
            let _ = s.triggers.reload(&s.registry);
            Ok(m)
        })
        .await;
    match r {
        Ok(m) => json(StatusCode::ACCEPTED, &public(m)),
        Err(e) => e.into_response(),
    }
}

async fn delete(State(s): State<AppState>, Path(uuid): Path<String>) -> Response {
    let r = s
        .off_async(move |s| {
            let mut m = find(s, &uuid)?;
            s.stores
                .mappings
                .put_event_source_mapping(&uuid, "", None)?;
            // A failure is logged; the previous event sources stay.
            let _ = s.triggers.reload(&s.registry);
            m["State"] = "Deleting".into();
            Ok(m)
        })
        .await;
    match r {
        Ok(m) => json(StatusCode::ACCEPTED, &public(m)),
        Err(e) => e.into_response(),
    }
}
