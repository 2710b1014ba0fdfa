//! The Application Auto Scaling API (JSON 1.1: `POST /` with `X-Amz-Target:
//! AnyScaleFrontendService.<Op>`) for the `lambda` namespace, and the dashboard's
//! `GET /stratus/v1/autoscaling?function=NAME`. Requests are parsed and checked
//! here, then handed to [`crate::autoscale::Autoscaler`]; errors leave in the JSON
//! 1.1 shape (`{"__type": "ValidationException", "message": ...}`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::AppState;
use crate::autoscale::model::{self, Policy, Scheduled, Target};
use crate::autoscale::tracking::Statistic;
use crate::autoscale::{AasError, PolicyInput, RegisterInput, ScheduledInput};
use crate::error::ApiError;

/// `X-Amz-Target` prefix of this API.
pub(crate) const TARGET_PREFIX: &str = stratus_iam::AUTOSCALING_TARGET_PREFIX;

/// Most items a Describe call returns per page (AAS's limit).
const MAX_RESULTS: usize = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/stratus/v1/autoscaling", get(overview))
}

#[derive(Deserialize)]
struct OverviewQuery {
    function: Option<String>,
}

async fn overview(State(s): State<AppState>, Query(q): Query<OverviewQuery>) -> Response {
    let function = q.function.filter(|f| !f.is_empty());
    if let Some(f) = &function {
        if !stratus_rules::is_function_name(f) {
            return ApiError::validation(f, "function", "Member must be a function name")
                .into_response();
        }
    }
    let result = s
        .off_async(move |s| {
            s.autoscaler
                .overview(function.as_deref())
                .map_err(|e| ApiError::service(e.to_string()))
        })
        .await;
    match result {
        Ok(o) => super::json(StatusCode::OK, &o),
        Err(e) => e.into_response(),
    }
}

/// An error of this API, as a response.
enum Error {
    Aas(AasError),
    /// The body is not the JSON the operation takes.
    Serialization(String),
    InvalidNextToken,
    UnknownOperation(String),
}

impl From<AasError> for Error {
    fn from(e: AasError) -> Self {
        Self::Aas(e)
    }
}

fn validation(msg: impl Into<String>) -> Error {
    Error::Aas(AasError::Validation(msg.into()))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, kind, message) = match self {
            Self::Aas(e) => (
                if matches!(e, AasError::Internal(_)) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::BAD_REQUEST
                },
                e.error_type(),
                e.to_string(),
            ),
            Self::Serialization(m) => (StatusCode::BAD_REQUEST, "SerializationException", m),
            Self::InvalidNextToken => (
                StatusCode::BAD_REQUEST,
                "InvalidNextTokenException",
                "The NextToken value is invalid".into(),
            ),
            Self::UnknownOperation(op) => (
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("Operation {op} is not served by this server"),
            ),
        };
        let body = json!({ "__type": kind, "message": message }).to_string();
        let mut resp = (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            body,
        )
            .into_response();
        if let Ok(v) = http::HeaderValue::from_str(kind) {
            resp.headers_mut().insert("x-amzn-errortype", v);
        }
        if let Ok(id) = http::HeaderValue::from_str(&crate::model::new_uuid()) {
            resp.headers_mut().insert("x-amzn-requestid", id);
        }
        resp
    }
}

fn ok(v: Value) -> Response {
    let mut resp = (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response();
    if let Ok(id) = http::HeaderValue::from_str(&crate::model::new_uuid()) {
        resp.headers_mut().insert("x-amzn-requestid", id);
    }
    resp
}

/// Runs `op` (`X-Amz-Target` after the prefix) on `body`.
pub(crate) async fn handle(s: AppState, target: String, body: Bytes) -> Response {
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or_default()
        .to_string();
    let result = s
        .off_async(move |s| Ok(dispatch(s, &op, &body)))
        .await
        .unwrap_or_else(|e| Err(Error::Aas(AasError::Internal(e.message))));
    match result {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

fn dispatch(s: &AppState, op: &str, body: &[u8]) -> Result<Value, Error> {
    let a = &s.autoscaler;
    let req = parse(body)?;
    match op {
        "RegisterScalableTarget" => {
            let r: RegisterReq = fields(&req)?;
            let rid = scope(&r.service_namespace, &r.resource_id, &r.scalable_dimension)?;
            let arn = a.register(RegisterInput {
                resource_id: rid,
                min: r.min_capacity,
                max: r.max_capacity,
                suspended: r.suspended_state.map(|s| {
                    (
                        s.dynamic_scaling_in_suspended,
                        s.dynamic_scaling_out_suspended,
                        s.scheduled_scaling_suspended,
                    )
                }),
            })?;
            Ok(json!({ "ScalableTargetARN": arn }))
        }
        "DeregisterScalableTarget" => {
            let r: TargetReq = fields(&req)?;
            let rid = scope(&r.service_namespace, &r.resource_id, &r.scalable_dimension)?;
            a.deregister(&rid)?;
            Ok(json!({}))
        }
        "PutScalingPolicy" => put_policy(s, &req),
        "DeleteScalingPolicy" => {
            let r: PolicyReq = fields(&req)?;
            let rid = scope(&r.service_namespace, &r.resource_id, &r.scalable_dimension)?;
            let name = required(r.policy_name, "policyName")?;
            a.delete_policy(&rid, &name)?;
            Ok(json!({}))
        }
        "PutScheduledAction" => {
            let r: ScheduledReq = fields(&req)?;
            let rid = scope(&r.service_namespace, &r.resource_id, &r.scalable_dimension)?;
            let name = required(r.scheduled_action_name, "scheduledActionName")?;
            check_action_name(&name)?;
            let action = r.scalable_target_action.unwrap_or_default();
            a.put_scheduled(ScheduledInput {
                name,
                resource_id: rid,
                schedule: r.schedule,
                timezone: r.timezone,
                start: r.start_time,
                end: r.end_time,
                min: action.min_capacity,
                max: action.max_capacity,
            })?;
            Ok(json!({}))
        }
        "DeleteScheduledAction" => {
            let r: ScheduledReq = fields(&req)?;
            let rid = scope(&r.service_namespace, &r.resource_id, &r.scalable_dimension)?;
            let name = required(r.scheduled_action_name, "scheduledActionName")?;
            a.delete_scheduled(&rid, &name)?;
            Ok(json!({}))
        }
        "DescribeScalableTargets" => {
            let r: DescribeReq = fields(&req)?;
            namespace(&r.service_namespace)?;
            dimension_filter(r.scalable_dimension.as_deref())?;
            let items: Vec<Value> = a
                .targets(r.resource_ids.as_deref())
                .iter()
                .map(|t| target_json(s, t))
                .collect();
            page(
                items,
                r.max_results,
                r.next_token.as_deref(),
                "ScalableTargets",
            )
        }
        "DescribeScalingPolicies" => {
            let r: DescribeReq = fields(&req)?;
            namespace(&r.service_namespace)?;
            dimension_filter(r.scalable_dimension.as_deref())?;
            let items: Vec<Value> = a
                .policies(r.resource_id.as_deref(), r.policy_names.as_deref())
                .iter()
                .map(|p| policy_json(s, p))
                .collect();
            page(
                items,
                r.max_results,
                r.next_token.as_deref(),
                "ScalingPolicies",
            )
        }
        "DescribeScheduledActions" => {
            let r: DescribeReq = fields(&req)?;
            namespace(&r.service_namespace)?;
            dimension_filter(r.scalable_dimension.as_deref())?;
            let items: Vec<Value> = a
                .scheduled(
                    r.resource_id.as_deref(),
                    r.scheduled_action_names.as_deref(),
                )
                .iter()
                .map(|x| scheduled_json(s, x))
                .collect();
            page(
                items,
                r.max_results,
                r.next_token.as_deref(),
                "ScheduledActions",
            )
        }
        "DescribeScalingActivities" => {
            let r: DescribeReq = fields(&req)?;
            namespace(&r.service_namespace)?;
            dimension_filter(r.scalable_dimension.as_deref())?;
            let items: Vec<Value> = a
                .activities(r.resource_id.as_deref(), None, 1000)?
                .iter()
                .map(|x| {
                    let mut v = json!({
                        "ActivityId": x.id,
                        "ServiceNamespace": model::NAMESPACE,
                        "ResourceId": x.resource_id,
                        "ScalableDimension": model::DIMENSION,
                        "Description": x.description,
                        "Cause": x.cause,
                        "StartTime": x.start,
                        "EndTime": x.end,
                        "StatusCode": x.status,
                        "Details": match x.metric {
                            Some(m) => format!("Metric value {m:.4}; provisioned concurrency {} -> {}", x.from, x.to),
                            None => format!("Provisioned concurrency {} -> {}", x.from, x.to),
                        },
                    });
                    if let (Some(m), Some(o)) = (&x.status_message, v.as_object_mut()) {
                        o.insert("StatusMessage".into(), json!(m));
                    }
                    v
                })
                .collect();
            page(
                items,
                r.max_results,
                r.next_token.as_deref(),
                "ScalingActivities",
            )
        }
        other => Err(Error::UnknownOperation(other.to_string())),
    }
}

fn parse(body: &[u8]) -> Result<Value, Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Serialization(format!("The request body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Error::Serialization(
            "The request body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

fn fields<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Error> {
    T::deserialize(v).map_err(|e| Error::Serialization(format!("Invalid request: {e}")))
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, Error> {
    v.ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn namespace(ns: &Option<String>) -> Result<(), Error> {
    match ns.as_deref() {
        None => Err(required::<()>(None, "serviceNamespace")
            .err()
            .unwrap_or_else(|| validation("ServiceNamespace is required"))),
        Some(model::NAMESPACE) => Ok(()),
        Some(other) => Err(validation(format!(
            "Unsupported service namespace {other}: this server scales only the lambda namespace"
        ))),
    }
}

fn dimension_filter(d: Option<&str>) -> Result<(), Error> {
    match d {
        None | Some(model::DIMENSION) => Ok(()),
        Some(other) => Err(validation(format!(
            "Unsupported scalable dimension {other} for service namespace lambda: expected {}",
            model::DIMENSION
        ))),
    }
}

/// Checks namespace, dimension and resource id; returns the resource id.
fn scope(ns: &Option<String>, rid: &Option<String>, dim: &Option<String>) -> Result<String, Error> {
    namespace(ns)?;
    let rid = required(rid.clone(), "resourceId")?;
    let dim = required(dim.clone(), "scalableDimension")?;
    dimension_filter(Some(&dim))?;
    if model::parse_resource_id(&rid).is_none() {
        return Err(validation(format!(
            "Unsupported resource ID {rid}: a Lambda resource ID is function:NAME:ALIAS or function:NAME:VERSION"
        )));
    }
    Ok(rid)
}

fn check_action_name(name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.len() > 256
        || name.starts_with(' ')
        || name.ends_with(' ')
        || name
            .chars()
            .any(|c| c.is_control() || matches!(c, ':' | '/' | '|'));
    if bad {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'scheduledActionName' failed to satisfy constraint: Member must be 1 to 256 characters without ':', '/', '|', control characters or leading/trailing spaces"
        )));
    }
    Ok(())
}

fn page(
    items: Vec<Value>,
    max: Option<i64>,
    token: Option<&str>,
    key: &str,
) -> Result<Value, Error> {
    let max = match max {
        None => MAX_RESULTS,
        Some(n) if (1..=MAX_RESULTS as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(validation(format!(
                "MaxResults must be between 1 and {MAX_RESULTS}, not {n}"
            )))
        }
    };
    let start = match token {
        None => 0,
        Some(t) => t
            .strip_prefix("p")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or(Error::InvalidNextToken)?,
    };
    let end = (start + max).min(items.len());
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(items[start..end].to_vec()));
    if end < items.len() {
        out.insert("NextToken".into(), json!(format!("p{end}")));
    }
    Ok(Value::Object(out))
}

fn target_json(s: &AppState, t: &Target) -> Value {
    json!({
        "ServiceNamespace": model::NAMESPACE,
        "ResourceId": t.resource_id,
        "ScalableDimension": model::DIMENSION,
        "MinCapacity": t.min,
        "MaxCapacity": t.max,
        "RoleARN": s.autoscaler.role_arn(),
        "CreationTime": t.created,
        "SuspendedState": {
            "DynamicScalingInSuspended": t.suspended.0,
            "DynamicScalingOutSuspended": t.suspended.1,
            "ScheduledScalingSuspended": t.suspended.2,
        },
        "ScalableTargetARN": s.autoscaler.target_arn(t),
    })
}

fn policy_json(s: &AppState, p: &Policy) -> Value {
    let spec_key = if p.predefined {
        "PredefinedMetricSpecification"
    } else {
        "CustomizedMetricSpecification"
    };
    json!({
        "PolicyARN": s.autoscaler.policy_arn(p),
        "PolicyName": p.name,
        "ServiceNamespace": model::NAMESPACE,
        "ResourceId": p.resource_id,
        "ScalableDimension": model::DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": p.target_value,
            spec_key: p.metric_spec,
            "ScaleOutCooldown": p.scale_out_cooldown,
            "ScaleInCooldown": p.scale_in_cooldown,
            "DisableScaleIn": p.disable_scale_in,
        },
        "Alarms": s.autoscaler.alarms(p).into_iter().map(|(n, a)| json!({"AlarmName": n, "AlarmARN": a})).collect::<Vec<_>>(),
        "CreationTime": p.created,
    })
}

fn scheduled_json(s: &AppState, x: &Scheduled) -> Value {
    let mut action = Map::new();
    if let Some(m) = x.min {
        action.insert("MinCapacity".into(), json!(m));
    }
    if let Some(m) = x.max {
        action.insert("MaxCapacity".into(), json!(m));
    }
    let mut v = json!({
        "ScheduledActionName": x.name,
        "ScheduledActionARN": s.autoscaler.scheduled_arn(x),
        "ServiceNamespace": model::NAMESPACE,
        "Schedule": x.schedule,
        "ResourceId": x.resource_id,
        "ScalableDimension": model::DIMENSION,
        "ScalableTargetAction": action,
        "CreationTime": x.created,
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(tz) = &x.timezone {
            o.insert("Timezone".into(), json!(tz));
        }
        if let Some(t) = x.start {
            o.insert("StartTime".into(), json!(t));
        }
        if let Some(t) = x.end {
            o.insert("EndTime".into(), json!(t));
        }
    }
    v
}

fn put_policy(s: &AppState, req: &Value) -> Result<Value, Error> {
    let r: PolicyReq = fields(req)?;
    let rid = scope(&r.service_namespace, &r.resource_id, &r.scalable_dimension)?;
    let name = required(r.policy_name, "policyName")?;
    if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_control()) {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'policyName' failed to satisfy constraint: Member must be 1 to 256 printable characters"
        )));
    }
    match r.policy_type.as_deref() {
        Some("TargetTrackingScaling") => {}
        None if r.target_tracking_scaling_policy_configuration.is_some() => {}
        Some(other @ ("StepScaling" | "PredictiveScaling")) | Some(other) => {
            return Err(validation(format!(
                "Policy type {other} is not supported for Lambda provisioned concurrency on this server: use TargetTrackingScaling"
            )))
        }
        None => {
            return Err(validation(
                "Policy type StepScaling (the default) is not supported on this server: set PolicyType to TargetTrackingScaling",
            ))
        }
    }
    let c = required(
        r.target_tracking_scaling_policy_configuration,
        "targetTrackingScalingPolicyConfiguration",
    )?;
    let target_value = required(
        c.target_value,
        "targetTrackingScalingPolicyConfiguration.targetValue",
    )?;
    let (statistic, spec, predefined) = match (c.predefined_metric_specification, c.customized_metric_specification) {
        (Some(_), Some(_)) => {
            return Err(validation(
                "Specify either PredefinedMetricSpecification or CustomizedMetricSpecification, not both",
            ))
        }
        (Some(p), None) => {
            let t = p.get("PredefinedMetricType").and_then(Value::as_str).unwrap_or("");
            if t != model::PREDEFINED_METRIC {
                return Err(validation(format!(
                    "Unsupported predefined metric type {t} for Lambda provisioned concurrency: expected {}",
                    model::PREDEFINED_METRIC
                )));
            }
            (Statistic::Average, p, true)
        }
        (None, Some(c)) => {
            let name = c.get("MetricName").and_then(Value::as_str).unwrap_or("");
            let ns = c.get("Namespace").and_then(Value::as_str).unwrap_or("");
            if name != "ProvisionedConcurrencyUtilization" || ns != "AWS/Lambda" {
                return Err(validation(format!(
                    "Unsupported customized metric {ns}/{name}: this server tracks AWS/Lambda ProvisionedConcurrencyUtilization only"
                )));
            }
            let stat = match c.get("Statistic") {
                None => Statistic::Average,
                Some(v) => v.as_str().and_then(Statistic::parse).ok_or_else(|| {
                    validation(format!(
                        "Invalid statistic {v}: expected Average, Minimum, Maximum, SampleCount or Sum"
                    ))
                })?,
            };
            (stat, c, false)
        }
        (None, None) => {
            return Err(validation(
                "A target tracking policy needs a PredefinedMetricSpecification or a CustomizedMetricSpecification",
            ))
        }
    };
    let (arn, alarms) = s.autoscaler.put_policy(PolicyInput {
        name,
        resource_id: rid,
        target_value,
        scale_out_cooldown: c.scale_out_cooldown,
        scale_in_cooldown: c.scale_in_cooldown,
        disable_scale_in: c.disable_scale_in.unwrap_or(false),
        statistic,
        metric_spec: spec,
        predefined,
    })?;
    Ok(json!({
        "PolicyARN": arn,
        "Alarms": alarms.into_iter().map(|(n, a)| json!({"AlarmName": n, "AlarmARN": a})).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Suspended {
    dynamic_scaling_in_suspended: Option<bool>,
    dynamic_scaling_out_suspended: Option<bool>,
    scheduled_scaling_suspended: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterReq {
    service_namespace: Option<String>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    min_capacity: Option<i64>,
    max_capacity: Option<i64>,
    suspended_state: Option<Suspended>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetReq {
    service_namespace: Option<String>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tracking {
    target_value: Option<f64>,
    predefined_metric_specification: Option<Value>,
    customized_metric_specification: Option<Value>,
    scale_out_cooldown: Option<i64>,
    scale_in_cooldown: Option<i64>,
    disable_scale_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyReq {
    policy_name: Option<String>,
    service_namespace: Option<String>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    policy_type: Option<String>,
    target_tracking_scaling_policy_configuration: Option<Tracking>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Action {
    min_capacity: Option<i64>,
    max_capacity: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledReq {
    service_namespace: Option<String>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    scheduled_action_name: Option<String>,
    schedule: Option<String>,
    timezone: Option<String>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    scalable_target_action: Option<Action>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeReq {
    service_namespace: Option<String>,
    resource_ids: Option<Vec<String>>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    policy_names: Option<Vec<String>>,
    scheduled_action_names: Option<Vec<String>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}
