//! The CloudWatch metric API (GetMetricStatistics, GetMetricData, ListMetrics) for
//! the `AWS/Lambda` and `AWS/SQS` namespaces, in the three protocols CloudWatch's
//! model lists: the `query` protocol of older SDKs (`POST /`, a form body with
//! `Action=…&Version=2010-08-01`, XML answers), AWS JSON 1.0 (`POST /`, `X-Amz-Target:
//! GraniteServiceVersion20100801.{Op}`, timestamps as epoch seconds) — what
//! botocore 1.43's `cloudwatch` client and the AWS CLI send, as botocore prefers
//! `json` among the model's protocols — and Smithy RPC v2 CBOR (`POST
//! /service/GraniteServiceVersion20100801/operation/{Op}`, header `smithy-protocol:
//! rpc-v2-cbor`, timestamps as CBOR tag 1), the model's default. Requests are
//! decoded into JSON values (timestamps as numbers) and answers built as [`Out`]
//! trees, so the operations themselves are protocol-free. Errors are each
//! protocol's (`__type` and `message`), with `x-amzn-query-error` for the
//! query-compatible error codes (`InvalidParameterValue`, `MissingParameter`, …)
//! that boto3 reports. In a cluster the reads merge every node's per-minute rows
//! (`cloudwatch_cluster.rs`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use stratus_metrics::{dims, is_statistic, parse_dims, Agg};

use super::AppState;

/// Every node's metrics in a cluster: reads merge the other nodes' minutes.
#[path = "cloudwatch_cluster.rs"]
mod cluster;
pub(crate) use cluster::{mark_unreachable, Source};

/// Path prefix of the RPC v2 CBOR operations.
pub(crate) const CBOR_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

/// `X-Amz-Target` prefix of the JSON protocol.
pub(crate) const JSON_TARGET_PREFIX: &str = "GraniteServiceVersion20100801.";

/// Which wire protocol a request came in (and its answer goes out) in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// AWS JSON 1.0.
    Json,
    /// Smithy RPC v2 CBOR.
    Cbor,
    /// The AWS query protocol (form in, XML out).
    Query,
}

/// The XML namespace of query-protocol answers.
const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// CloudWatch keeps at most this many data points per GetMetricStatistics call.
const MAX_DATAPOINTS: i64 = 1440;

/// A CloudWatch error: HTTP status, shape name, query-compatible code, message.
#[derive(Debug)]
pub(crate) struct CwError {
    status: StatusCode,
    shape: &'static str,
    code: &'static str,
    message: String,
}

impl CwError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            shape: "InvalidParameterValueException",
            code: "InvalidParameterValue",
            message: message.into(),
        }
    }
    fn missing(param: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            shape: "MissingRequiredParameterException",
            code: "MissingParameter",
            message: format!("The parameter {param} is required."),
        }
    }
    fn combination(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            shape: "InvalidParameterCombinationException",
            code: "InvalidParameterCombination",
            message: message.into(),
        }
    }
    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            shape: "SerializationException",
            code: "SerializationException",
            message: message.into(),
        }
    }
    fn unknown_operation(op: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            shape: "UnknownOperationException",
            code: "UnknownOperationException",
            message: format!("Operation {op} is not supported by Stratus's CloudWatch API (GetMetricStatistics, GetMetricData, ListMetrics)."),
        }
    }
    fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            shape: "InternalServiceFault",
            code: "InternalServiceError",
            message: message.into(),
        }
    }
}

impl CwError {
    fn respond(self, wire: Wire) -> Response {
        error_response(wire, self.status, self.shape, self.code, &self.message)
    }
}

/// An error in `wire`'s shape (also used by the authentication layer).
pub(crate) fn error_response(
    wire: Wire,
    status: StatusCode,
    shape: &str,
    code: &str,
    message: &str,
) -> Response {
    let body = Out::Map(vec![
        (
            "__type",
            Out::Str(format!("com.amazonaws.cloudwatch#{shape}")),
        ),
        ("message", Out::Str(message.to_string())),
    ]);
    let fault = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let request_id = crate::model::new_uuid();
    let mut resp = if wire == Wire::Query {
        let xml = format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{fault}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            escape(code),
            escape(message),
        );
        (status, [("content-type", "text/xml")], xml).into_response()
    } else {
        respond(wire, status, &body)
    };
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("{code};{fault}")) {
        resp.headers_mut().insert("x-amzn-query-error", v);
    }
    resp
}

/// An answer: a value tree that knows which numbers are timestamps.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Str(String),
    Num(f64),
    Time(i64),
    List(Vec<Out>),
    Map(Vec<(&'static str, Out)>),
    /// A map with keys known only at run time (ExtendedStatistics).
    Dict(Vec<(String, Out)>),
}

impl Out {
    fn cbor(&self) -> ciborium::Value {
        use ciborium::Value as C;
        match self {
            Out::Str(s) => C::Text(s.clone()),
            Out::Num(n) => C::Float(*n),
            Out::Time(t) => C::Tag(1, Box::new(C::Integer((*t).into()))),
            Out::List(v) => C::Array(v.iter().map(Out::cbor).collect()),
            Out::Map(m) => C::Map(
                m.iter()
                    .map(|(k, v)| (C::Text((*k).into()), v.cbor()))
                    .collect(),
            ),
            Out::Dict(m) => C::Map(
                m.iter()
                    .map(|(k, v)| (C::Text(k.clone()), v.cbor()))
                    .collect(),
            ),
        }
    }
}

impl Out {
    fn json(&self) -> Value {
        match self {
            Out::Str(s) => Value::String(s.clone()),
            Out::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Out::Time(t) => Value::from(*t),
            Out::List(v) => Value::Array(v.iter().map(Out::json).collect()),
            Out::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| ((*k).to_string(), v.json()))
                    .collect(),
            ),
            Out::Dict(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.json())).collect()),
        }
    }
}

impl Out {
    /// The query protocol's XML for this value as the content of an element.
    fn xml(&self, out: &mut String) {
        match self {
            Out::Str(s) => out.push_str(&escape(s)),
            Out::Num(n) => out.push_str(&format!("{n:?}")),
            Out::Time(t) => out.push_str(&iso(*t)),
            Out::List(v) => {
                for item in v {
                    out.push_str("<member>");
                    item.xml(out);
                    out.push_str("</member>");
                }
            }
            Out::Map(m) => {
                for (k, v) in m {
                    out.push_str(&format!("<{k}>"));
                    v.xml(out);
                    out.push_str(&format!("</{k}>"));
                }
            }
            Out::Dict(m) => {
                for (k, v) in m {
                    out.push_str("<entry><key>");
                    out.push_str(&escape(k));
                    out.push_str("</key><value>");
                    v.xml(out);
                    out.push_str("</value></entry>");
                }
            }
        }
    }
}

/// Epoch seconds as ISO 8601 (`2026-12-03T12:00:00Z`).
fn iso(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Text escaped for XML content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn respond_query(op: &str, body: &Out) -> Response {
    let mut xml = format!("<{op}Response xmlns=\"{XMLNS}\"><{op}Result>");
    body.xml(&mut xml);
    xml.push_str(&format!(
        "</{op}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{op}Response>",
        crate::model::new_uuid()
    ));
    (StatusCode::OK, [("content-type", "text/xml")], xml).into_response()
}

fn respond(wire: Wire, status: StatusCode, body: &Out) -> Response {
    match wire {
        // Only errors come here in the query protocol (answers need the operation).
        Wire::Query => respond_query("Unknown", body),
        Wire::Cbor => cbor_response(status, body),
        Wire::Json => (
            status,
            [("content-type", "application/x-amz-json-1.0")],
            body.json().to_string(),
        )
            .into_response(),
    }
}

fn cbor_response(status: StatusCode, body: &Out) -> Response {
    let mut bytes = Vec::new();
    if let Err(e) = ciborium::into_writer(&body.cbor(), &mut bytes) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        status,
        [
            ("content-type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
        ],
        bytes,
    )
        .into_response()
}

/// A CBOR request body as JSON: tag 1 (epoch-seconds timestamps) becomes a number.
fn to_json(v: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match v {
        C::Integer(i) => i128::from(i)
            .try_into()
            .map(|i: i64| Value::from(i))
            .unwrap_or(Value::Null),
        C::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        C::Text(s) => Value::String(s),
        C::Bool(b) => Value::Bool(b),
        C::Null => Value::Null,
        C::Tag(_, inner) => to_json(*inner),
        C::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        C::Map(m) => Value::Object(
            m.into_iter()
                .filter_map(|(k, v)| match k {
                    C::Text(k) => Some((k, to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Runs one RPC v2 CBOR operation.
pub(crate) async fn handle_cbor(
    s: &AppState,
    headers: &http::HeaderMap,
    op: &str,
    body: &[u8],
) -> Response {
    let input = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match ciborium::from_reader::<ciborium::Value, _>(body) {
            Ok(v) => to_json(v),
            Err(e) => {
                return CwError::serialization(format!("The request body is not valid CBOR: {e}"))
                    .respond(Wire::Cbor)
            }
        }
    };
    handle(s, headers, op, input, Wire::Cbor).await
}

/// Runs one AWS JSON 1.0 operation (`target` is the whole `X-Amz-Target`).
pub(crate) async fn handle_json(
    s: &AppState,
    headers: &http::HeaderMap,
    target: &str,
    body: &[u8],
) -> Response {
    let op = target.strip_prefix(JSON_TARGET_PREFIX).unwrap_or(target);
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(e) => {
                return CwError::serialization(format!("The request body is not valid JSON: {e}"))
                    .respond(Wire::Json)
            }
        }
    };
    handle(s, headers, op, input, Wire::Json).await
}

/// Runs one query-protocol request (`Action=…&Version=2010-08-01&…`).
pub(crate) async fn handle_query(s: &AppState, headers: &http::HeaderMap, body: &[u8]) -> Response {
    let mut input = Value::Object(Default::default());
    let mut action = None;
    for (k, v) in form_pairs(body) {
        match &*k {
            "Action" => action = Some(v),
            "Version" => {}
            _ => insert_path(&mut input, &k, v),
        }
    }
    let Some(op) = action else {
        return CwError::missing("Action").respond(Wire::Query);
    };
    handle(s, headers, &op, input, Wire::Query).await
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Puts a query-protocol parameter (`Dimensions.member.1.Name`) into a JSON tree:
/// `member.N` is the N-th item of a list (1-based), other segments are fields.
fn insert_path(root: &mut Value, key: &str, value: String) {
    let segs: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    let mut i = 0;
    while i < segs.len() {
        let last = |j: usize| j + 1 >= segs.len();
        if segs[i] == "member" {
            let Some(n) = segs
                .get(i + 1)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
            else {
                return;
            };
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            let Some(arr) = cur.as_array_mut() else {
                return;
            };
            while arr.len() < n {
                arr.push(Value::Null);
            }
            if last(i + 1) {
                arr[n - 1] = Value::String(value);
                return;
            }
            cur = &mut arr[n - 1];
            i += 2;
        } else {
            if !cur.is_object() {
                *cur = Value::Object(Default::default());
            }
            let Some(obj) = cur.as_object_mut() else {
                return;
            };
            if last(i) {
                obj.insert(segs[i].to_string(), Value::String(value));
                return;
            }
            cur = obj.entry(segs[i]).or_insert(Value::Null);
            i += 1;
        }
    }
}

async fn handle(
    s: &AppState,
    headers: &http::HeaderMap,
    op: &str,
    input: Value,
    wire: Wire,
) -> Response {
    s.metrics.sync().await;
    if cluster::wants_minutes(headers) {
        // Another node of the cluster reading this node's rows to merge them.
        return cluster::local_minutes(&s.metrics, op, &input)
            .await
            .unwrap_or_else(|e| e.respond(wire));
    }
    let src = Source::new(s, headers);
    let op = op.to_string();
    let op_name = op.clone();
    let result = tokio::task::spawn_blocking(move || {
        let out = run(&src, &op, &input);
        (out, src.unreachable())
    })
    .await
    .unwrap_or_else(|e| (Err(CwError::internal(e.to_string())), Vec::new()));
    let (result, unreachable) = result;
    let mut resp = match result {
        Ok(out) if wire == Wire::Query => respond_query(&op_name, &out),
        Ok(out) => respond(wire, StatusCode::OK, &out),
        Err(e) => e.respond(wire),
    };
    cluster::mark_unreachable(&mut resp, &unreachable);
    resp
}

fn run(store: &Source, op: &str, input: &Value) -> Result<Out, CwError> {
    match op {
        "GetMetricStatistics" => get_metric_statistics(store, input),
        "GetMetricData" => get_metric_data(store, input),
        "ListMetrics" => list_metrics(store, input),
        other => Err(CwError::unknown_operation(other)),
    }
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, CwError> {
    match v.get(name) {
        None | Some(Value::Null) => Err(CwError::missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(CwError::invalid(format!(
            "The parameter {name} must be a string."
        ))),
    }
}

/// A timestamp: epoch seconds (CBOR tag 1, JSON number) or an ISO 8601 string.
fn time_field(v: &Value, name: &str) -> Result<i64, CwError> {
    match v.get(name) {
        None | Some(Value::Null) => Err(CwError::missing(name)),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| f.floor() as i64)
            .ok_or_else(|| CwError::invalid(format!("The parameter {name} is not a timestamp."))),
        Some(Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| {
                    CwError::invalid(format!(
                        "The parameter {name} must be an ISO 8601 timestamp, not {s:?}."
                    ))
                })
        }
        Some(_) => Err(CwError::invalid(format!(
            "The parameter {name} is not a timestamp."
        ))),
    }
}

fn period_field(v: &Value, name: &str) -> Result<i64, CwError> {
    let p = v
        .get(name)
        .ok_or_else(|| CwError::missing(name))?
        .as_i64()
        // The query protocol sends every value as text.
        .or_else(|| v.get(name)?.as_str()?.parse().ok())
        .ok_or_else(|| CwError::invalid(format!("The parameter {name} must be an integer.")))?;
    if p < 60 || p % 60 != 0 {
        // Stratus keeps one-minute data only (no high-resolution metrics).
        return Err(CwError::invalid(format!(
            "The parameter {name} must be a multiple of 60 (Stratus keeps one-minute data), not {p}."
        )));
    }
    Ok(p)
}

/// `[{Name, Value}]` as canonical dimensions.
fn dimensions(v: Option<&Value>) -> Result<String, CwError> {
    let Some(list) = v.and_then(Value::as_array) else {
        return Ok(String::new());
    };
    let mut pairs = Vec::new();
    for d in list {
        let name = str_field(d, "Name")?;
        let value = str_field(d, "Value")?;
        pairs.push((name, value));
    }
    Ok(dims(&pairs))
}

fn dims_out(canonical: &str) -> Out {
    Out::List(
        parse_dims(canonical)
            .into_iter()
            .map(|(n, v)| Out::Map(vec![("Name", Out::Str(n)), ("Value", Out::Str(v))]))
            .collect(),
    )
}

/// The unit CloudWatch publishes each metric with.
fn unit_of(metric: &str) -> &'static str {
    match metric {
        "Duration" | "InitDuration" | "AsyncEventAge" => "Milliseconds",
        "ProvisionedConcurrencyUtilization" => "None",
        _ => "Count",
    }
}

fn get_metric_statistics(store: &Source, input: &Value) -> Result<Out, CwError> {
    let namespace = str_field(input, "Namespace")?;
    let metric = str_field(input, "MetricName")?;
    let start = time_field(input, "StartTime")?;
    let end = time_field(input, "EndTime")?;
    let period = period_field(input, "Period")?;
    let d = dimensions(input.get("Dimensions"))?;
    let names = |k: &str| -> Result<Vec<String>, CwError> {
        Ok(input
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    };
    let stats = names("Statistics")?;
    let extended = names("ExtendedStatistics")?;
    if stats.is_empty() && extended.is_empty() {
        return Err(CwError::combination(
            "Must specify either Statistics or ExtendedStatistics.",
        ));
    }
    for s in &stats {
        if !matches!(
            s.as_str(),
            "Sum" | "SampleCount" | "Average" | "Minimum" | "Maximum"
        ) {
            return Err(CwError::invalid(format!(
                "The parameter Statistics contains {s:?}; it must be one of SampleCount, Average, Sum, Minimum, Maximum."
            )));
        }
    }
    for s in &extended {
        if !s.starts_with('p') || !is_statistic(s) {
            return Err(CwError::invalid(format!(
                "The parameter ExtendedStatistics contains {s:?}; Stratus supports percentiles p0.0 to p100."
            )));
        }
    }
    if end <= start {
        return Err(CwError::invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    let points = (end - start + period - 1) / period;
    if points > MAX_DATAPOINTS {
        return Err(CwError::combination(format!(
            "You have requested up to {points} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
        )));
    }
    let rows = store
        .statistics(namespace, metric, &d, start, end, period)
        .map_err(|e| CwError::internal(e.to_string()))?;
    let unit = unit_of(metric);
    let datapoints = rows
        .iter()
        .map(|(t, a)| {
            let mut m = vec![("Timestamp", Out::Time(*t))];
            for s in &stats {
                if let Some(v) = a.stat(s) {
                    m.push((static_stat(s), Out::Num(v)));
                }
            }
            if !extended.is_empty() {
                let ext = extended
                    .iter()
                    .filter_map(|s| a.stat(s).map(|v| (s.clone(), Out::Num(v))))
                    .collect();
                m.push(("ExtendedStatistics", Out::Dict(ext)));
            }
            m.push(("Unit", Out::Str(unit.into())));
            Out::Map(m)
        })
        .collect();
    Ok(Out::Map(vec![
        ("Label", Out::Str(metric.to_string())),
        ("Datapoints", Out::List(datapoints)),
    ]))
}

fn static_stat(s: &str) -> &'static str {
    match s {
        "Sum" => "Sum",
        "SampleCount" => "SampleCount",
        "Average" => "Average",
        "Minimum" => "Minimum",
        _ => "Maximum",
    }
}

fn get_metric_data(store: &Source, input: &Value) -> Result<Out, CwError> {
    let start = time_field(input, "StartTime")?;
    let end = time_field(input, "EndTime")?;
    let queries = input
        .get("MetricDataQueries")
        .and_then(Value::as_array)
        .ok_or_else(|| CwError::missing("MetricDataQueries"))?;
    let ascending = input.get("ScanBy").and_then(Value::as_str) == Some("TimestampAscending");
    let mut results = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let id = str_field(q, "Id")?;
        if q.get("Expression").is_some_and(|e| !e.is_null()) {
            return Err(CwError::invalid(format!(
                "The value of MetricDataQueries.member.{}.Expression is not supported: Stratus answers MetricStat queries only (no metric math).",
                i + 1
            )));
        }
        let stat = q.get("MetricStat").ok_or_else(|| {
            CwError::missing(&format!("MetricDataQueries.member.{}.MetricStat", i + 1))
        })?;
        let m = stat.get("Metric").ok_or_else(|| {
            CwError::missing(&format!(
                "MetricDataQueries.member.{}.MetricStat.Metric",
                i + 1
            ))
        })?;
        let namespace = str_field(m, "Namespace")?;
        let metric = str_field(m, "MetricName")?;
        let d = dimensions(m.get("Dimensions"))?;
        let period = period_field(stat, "Period")?;
        let s = str_field(stat, "Stat")?;
        if !is_statistic(s) {
            return Err(CwError::invalid(format!(
                "The value {s:?} of MetricDataQueries.member.{}.MetricStat.Stat is not a statistic (Sum, Average, Minimum, Maximum, SampleCount, p0.0–p100).",
                i + 1
            )));
        }
        let return_data = q.get("ReturnData");
        if return_data.and_then(Value::as_bool) == Some(false)
            || return_data.and_then(Value::as_str) == Some("false")
        {
            continue;
        }
        let mut rows: Vec<(i64, f64)> = store
            .statistics(namespace, metric, &d, start, end, period)
            .map_err(|e| CwError::internal(e.to_string()))?
            .iter()
            .filter_map(|(t, a): &(i64, Agg)| a.stat(s).map(|v| (*t, v)))
            .collect();
        if !ascending {
            rows.reverse();
        }
        let label = q
            .get("Label")
            .and_then(Value::as_str)
            .unwrap_or(metric)
            .to_string();
        results.push(Out::Map(vec![
            ("Id", Out::Str(id.to_string())),
            ("Label", Out::Str(label)),
            (
                "Timestamps",
                Out::List(rows.iter().map(|(t, _)| Out::Time(*t)).collect()),
            ),
            (
                "Values",
                Out::List(rows.iter().map(|(_, v)| Out::Num(*v)).collect()),
            ),
            ("StatusCode", Out::Str("Complete".into())),
            ("Messages", Out::List(Vec::new())),
        ]));
    }
    Ok(Out::Map(vec![
        ("MetricDataResults", Out::List(results)),
        ("Messages", Out::List(Vec::new())),
    ]))
}

fn list_metrics(store: &Source, input: &Value) -> Result<Out, CwError> {
    let namespace = input.get("Namespace").and_then(Value::as_str);
    let metric = input.get("MetricName").and_then(Value::as_str);
    let mut filters = Vec::new();
    for f in input
        .get("Dimensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        filters.push((
            str_field(f, "Name")?.to_string(),
            f.get("Value").and_then(Value::as_str).map(str::to_string),
        ));
    }
    let ids = store
        .list_metrics(namespace, metric, &filters)
        .map_err(|e| CwError::internal(e.to_string()))?;
    let metrics = ids
        .into_iter()
        .map(|id| {
            Out::Map(vec![
                ("Namespace", Out::Str(id.namespace)),
                ("MetricName", Out::Str(id.metric)),
                ("Dimensions", dims_out(&id.dims)),
            ])
        })
        .collect();
    Ok(Out::Map(vec![("Metrics", Out::List(metrics))]))
}
