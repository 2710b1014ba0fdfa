//! The CloudWatch Logs read API over the log store, in the JSON 1.1 protocol
//! (`POST /`, `X-Amz-Target: Logs_20140328.<Op>`): DescribeLogGroups,
//! DescribeLogStreams, GetLogEvents and FilterLogEvents — what boto3's `logs`
//! client and `aws logs tail --follow` call. Errors take that protocol's shape
//! (`{"__type": "ResourceNotFoundException", "message": …}`).
//!
//! Page tokens name a position in the store (a row id, or the last name of the
//! previous page), so a page costs the same wherever it is. GetLogEvents's tokens
//! are `f/{id}` (events after `id`) and `b/{id}` (events before `id`); a forward
//! read that finds nothing newer hands back the token it was given, as AWS does.
//!
//! In a cluster every read also covers the other nodes' lines (`cwlogs_cluster.rs`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AppState;
use crate::logs::pattern::FilterPattern;

/// Every node's logs in a cluster: each read asks the other nodes too and merges.
#[path = "cwlogs_cluster.rs"]
mod cluster;
use crate::logs::{Direction, StreamCursor, StreamOrder};

/// The `X-Amz-Target` prefix of this API.
pub(super) const TARGET_PREFIX: &str = stratus_iam::LOGS_TARGET_PREFIX;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Most bytes of messages one page of events carries (AWS's 1 MB).
const PAGE_BYTES: usize = 1 << 20;

/// An error of this API.
#[derive(Debug)]
struct LogsError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl LogsError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidParameterException",
            message: message.into(),
        }
    }
    fn constraint(value: impl std::fmt::Display, field: &str, constraint: &str) -> Self {
        Self::invalid(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ))
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "ResourceNotFoundException",
            message: message.into(),
        }
    }
    fn serialization(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "SerializationException",
            message: message.into(),
        }
    }
    fn unavailable(e: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "ServiceUnavailableException",
            message: format!("cannot read logs: {e}"),
        }
    }
    fn bad_token() -> Self {
        Self::invalid("The specified nextToken is invalid.")
    }
    fn no_group() -> Self {
        Self::not_found("The specified log group does not exist.")
    }
}

impl IntoResponse for LogsError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.kind, "message": self.message }).to_string();
        (
            self.status,
            [
                ("content-type", CONTENT_TYPE),
                ("x-amzn-errortype", self.kind),
            ],
            body,
        )
            .into_response()
    }
}

impl From<rusqlite::Error> for LogsError {
    fn from(e: rusqlite::Error) -> Self {
        Self::unavailable(e)
    }
}

/// Answers one call of this API.
pub(super) async fn handle(
    s: AppState,
    target: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Response {
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or_default()
        .to_string();
    let input = match parse(body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if s.peers.is_cluster() && !crate::cluster::peers::is_local(headers) {
        return cluster::handle(s, op, input).await;
    }
    let result = tokio::task::spawn_blocking(move || call(&s, &op, input)).await;
    match result {
        Ok(Ok(v)) => (
            StatusCode::OK,
            [("content-type", CONTENT_TYPE)],
            v.to_string(),
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => LogsError::unavailable(e).into_response(),
    }
}

fn parse(body: &[u8]) -> Result<Value, LogsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(LogsError::serialization(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(LogsError::serialization(format!(
            "Could not parse request body into json: {e}"
        ))),
    }
}

fn call(s: &AppState, op: &str, input: Value) -> Result<Value, LogsError> {
    match op {
        "DescribeLogGroups" => describe_log_groups(s, typed(input)?),
        "DescribeLogStreams" => describe_log_streams(s, typed(input)?),
        "GetLogEvents" => get_log_events(s, typed(input)?),
        "FilterLogEvents" => filter_log_events(s, typed(input)?),
        _ => Err(LogsError {
            status: StatusCode::BAD_REQUEST,
            kind: "UnknownOperationException",
            message: format!(
                "Operation {op} is not supported by this server (it serves DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents)."
            ),
        }),
    }
}

/// The request's members in their types; a member of the wrong type is a
/// `SerializationException` naming it, as AWS answers.
fn typed<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, LogsError> {
    if let Value::Object(members) = &input {
        for (name, value) in members {
            let (ok, wanted) = match name.as_str() {
                "limit" | "startTime" | "endTime" => {
                    (value.is_i64() || value.is_null(), "an integer")
                }
                "descending"
                | "startFromHead"
                | "interleaved"
                | "unmask"
                | "includeLinkedAccounts" => (value.is_boolean() || value.is_null(), "a boolean"),
                "logStreamNames" | "logGroupIdentifiers" | "accountIdentifiers" => (
                    value.is_null()
                        || value
                            .as_array()
                            .is_some_and(|a| a.iter().all(Value::is_string)),
                    "a list of strings",
                ),
                _ => (value.is_string() || value.is_null(), "a string"),
            };
            if !ok {
                return Err(LogsError::serialization(format!(
                    "Could not read the request: member '{name}' must be {wanted}, not {value}"
                )));
            }
        }
    }
    serde_json::from_value(input)
        .map_err(|e| LogsError::serialization(format!("Could not read the request: {e}")))
}

fn limit(value: Option<i64>, max: i64) -> Result<u32, LogsError> {
    match value {
        None => Ok(max as u32),
        Some(n) if n < 1 => Err(LogsError::constraint(
            n,
            "limit",
            "Member must have value greater than or equal to 1",
        )),
        Some(n) if n > max => Err(LogsError::constraint(
            n,
            "limit",
            &format!("Member must have value less than or equal to {max}"),
        )),
        Some(n) => Ok(n as u32),
    }
}

fn encode_token(raw: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The payload of a token made by [`encode_token`] with `kind`.
fn decode_token(token: &str, kind: &str) -> Result<String, LogsError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(LogsError::bad_token)?;
    raw.strip_prefix(kind)
        .map(str::to_string)
        .ok_or_else(LogsError::bad_token)
}

fn group_name_ok(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#".contains(&b))
}

/// The group a request names by `logGroupName` or `logGroupIdentifier` (a name
/// or an ARN), and its id.
fn group(s: &AppState, name: Option<String>, ident: Option<String>) -> Result<i64, LogsError> {
    let name = match (name, ident) {
        (Some(_), Some(_)) => {
            return Err(LogsError::invalid(
                "LogGroup name and LogGroup identifier are mutually exclusive parameters.",
            ))
        }
        (Some(n), None) => {
            if !group_name_ok(&n) {
                return Err(LogsError::constraint(
                    &n,
                    "logGroupName",
                    "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
                ));
            }
            n
        }
        (None, Some(id)) => group_name_of(&id, "logGroupIdentifier")?,
        (None, None) => {
            return Err(LogsError::invalid(
                "Either logGroupName or logGroupIdentifier must be specified.",
            ))
        }
    };
    s.logs.group_id(&name)?.ok_or_else(LogsError::no_group)
}

/// The group a `logGroupIdentifier` names: a name, or
/// `arn:aws:logs:{region}:{account}:log-group:{name}[:*]`.
fn group_name_of(id: &str, field: &str) -> Result<String, LogsError> {
    let name = match id.strip_prefix("arn:") {
        Some(_) => {
            let parts: Vec<&str> = id.splitn(7, ':').collect();
            match parts.as_slice() {
                [_, _, "logs", _, _, "log-group", rest] => {
                    rest.strip_suffix(":*").unwrap_or(rest).to_string()
                }
                _ => {
                    return Err(LogsError::invalid(format!(
                        "{field}: '{id}' is neither a log group name nor a log group ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME)."
                    )))
                }
            }
        }
        None => id.to_string(),
    };
    if !group_name_ok(&name) {
        return Err(LogsError::constraint(
            &name,
            field,
            "Member must satisfy regular expression pattern: [\\w#+=/:,.@-]*",
        ));
    }
    Ok(name)
}

fn stream_name_ok(field: &str, name: &str) -> Result<(), LogsError> {
    if (1..=512).contains(&name.len()) && !name.contains([':', '*']) {
        Ok(())
    } else {
        Err(LogsError::constraint(
            name,
            field,
            "Member must satisfy regular expression pattern: [^:*]* (1 to 512 characters)",
        ))
    }
}

fn group_arn(s: &AppState, name: &str) -> String {
    let id = &s.registry.identity;
    format!(
        "arn:aws:logs:{}:{}:log-group:{name}",
        id.region, id.account_id
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeLogGroups {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    log_group_identifiers: Option<Vec<String>>,
    log_group_class: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn describe_log_groups(s: &AppState, r: DescribeLogGroups) -> Result<Value, LogsError> {
    let limit = limit(r.limit, 50)?;
    if r.log_group_name_prefix.is_some() && r.log_group_name_pattern.is_some() {
        return Err(LogsError::invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    if let Some(p) = &r.log_group_name_prefix {
        if !group_name_ok(p) {
            return Err(LogsError::constraint(
                p,
                "logGroupNamePrefix",
                "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
            ));
        }
    }
    let after = r
        .next_token
        .as_deref()
        .map(|t| decode_token(t, "g:"))
        .transpose()?;
    match r.log_group_class.as_deref() {
        None | Some("STANDARD") => {}
        // Every group here is STANDARD: no other class has any.
        Some("INFREQUENT_ACCESS" | "DELIVERY") => return Ok(json!({ "logGroups": [] })),
        Some(c) => {
            return Err(LogsError::constraint(
                c,
                "logGroupClass",
                "Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]",
            ))
        }
    }
    // Named groups: the ones that exist, by name, in one page (at most 50).
    let wanted: Option<Vec<String>> = match r.log_group_identifiers {
        None => None,
        Some(ids) => {
            if ids.is_empty() || ids.len() > 50 {
                return Err(LogsError::constraint(
                    format!("{} identifiers", ids.len()),
                    "logGroupIdentifiers",
                    "Member must have length between 1 and 50",
                ));
            }
            if r.log_group_name_prefix.is_some() || r.log_group_name_pattern.is_some() {
                return Err(LogsError::invalid(
                    "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.",
                ));
            }
            let mut names = Vec::new();
            for id in ids {
                names.push(group_name_of(&id, "logGroupIdentifiers")?);
            }
            names.sort();
            names.dedup();
            Some(names)
        }
    };
    if let Some(names) = wanted {
        let mut list = Vec::new();
        for name in names {
            if after.as_deref().is_some_and(|a| name.as_str() <= a) {
                continue;
            }
            if let Some(g) = s
                .logs
                .groups(Some(&name), None, 1)?
                .into_iter()
                .find(|g| g.name == name)
            {
                list.push(group_json(s, &g));
            }
        }
        return Ok(json!({ "logGroups": list }));
    }
    // A name pattern matches anywhere in the name (case-insensitively), which no
    // index answers: groups are one per function, so they are read in pages and
    // filtered here.
    let pattern = r
        .log_group_name_pattern
        .filter(|p| !p.is_empty())
        .map(|p| p.to_ascii_lowercase());
    let mut groups = Vec::new();
    let mut cursor = after;
    let mut more = false;
    loop {
        let page = s.logs.groups(
            r.log_group_name_prefix.as_deref(),
            cursor.as_deref(),
            limit + 1,
        )?;
        let full = page.len() > limit as usize;
        for g in page {
            cursor = Some(g.name.clone());
            if pattern
                .as_ref()
                .is_none_or(|p| g.name.to_ascii_lowercase().contains(p.as_str()))
            {
                if groups.len() == limit as usize {
                    more = true;
                    break;
                }
                groups.push(g);
            }
        }
        if more || !full {
            break;
        }
    }
    let next = if more {
        groups
            .last()
            .map(|g| encode_token(&format!("g:{}", g.name)))
    } else {
        None
    };
    let list: Vec<Value> = groups.iter().map(|g| group_json(s, g)).collect();
    let mut out = json!({ "logGroups": list });
    if let Some(t) = next {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

fn group_json(s: &AppState, g: &crate::logs::GroupInfo) -> Value {
    let arn = group_arn(s, &g.name);
    json!({
        "logGroupName": g.name,
        "creationTime": g.creation_ms,
        "metricFilterCount": 0,
        "arn": format!("{arn}:*"),
        "logGroupArn": arn,
        "logGroupClass": "STANDARD",
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeLogStreams {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn describe_log_streams(s: &AppState, r: DescribeLogStreams) -> Result<Value, LogsError> {
    let limit = limit(r.limit, 50)?;
    let order = match r.order_by.as_deref() {
        None | Some("LogStreamName") => StreamOrder::Name,
        Some("LastEventTime") => StreamOrder::LastEvent,
        Some(o) => {
            return Err(LogsError::constraint(
                o,
                "orderBy",
                "Member must satisfy enum value set: [LogStreamName, LastEventTime]",
            ))
        }
    };
    if let Some(p) = &r.log_stream_name_prefix {
        stream_name_ok("logStreamNamePrefix", p)?;
        if order == StreamOrder::LastEvent {
            return Err(LogsError::invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
    }
    let grp = group(s, r.log_group_name.clone(), r.log_group_identifier.clone())?;
    let cursor = match r.next_token.as_deref() {
        None => None,
        Some(t) => {
            let raw = decode_token(t, "s:")?;
            let (ms, name) = raw.split_once(':').ok_or_else(LogsError::bad_token)?;
            Some(StreamCursor {
                last_ms: ms.parse().map_err(|_| LogsError::bad_token())?,
                name: name.to_string(),
            })
        }
    };
    let mut streams = s.logs.streams(
        grp,
        r.log_stream_name_prefix.as_deref(),
        order,
        r.descending.unwrap_or(false),
        cursor.as_ref(),
        limit + 1,
    )?;
    let more = streams.len() > limit as usize;
    streams.truncate(limit as usize);
    let group_name = s.logs.group_name(grp)?.ok_or_else(LogsError::no_group)?;
    let arn = group_arn(s, &group_name);
    let list: Vec<Value> = streams
        .iter()
        .map(|st| {
            json!({
                "logStreamName": st.name,
                "creationTime": st.first_ms,
                "firstEventTimestamp": st.first_ms,
                "lastEventTimestamp": st.last_ms,
                "lastIngestionTime": st.last_ms,
                "arn": format!("{arn}:log-stream:{}", st.name),
                "storedBytes": 0,
            })
        })
        .collect();
    let mut out = json!({ "logStreams": list });
    if more {
        if let Some(last) = streams.last() {
            out["nextToken"] = json!(encode_token(&format!("s:{}:{}", last.last_ms, last.name)));
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetLogEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
}

fn get_log_events(s: &AppState, r: GetLogEvents) -> Result<Value, LogsError> {
    let limit = limit(r.limit, 10_000)?;
    let Some(stream_name) = r.log_stream_name else {
        return Err(LogsError::constraint(
            "null",
            "logStreamName",
            "Member must not be null",
        ));
    };
    stream_name_ok("logStreamName", &stream_name)?;
    let dir = match r.next_token.as_deref() {
        Some(t) => parse_event_token(t)?,
        None if r.start_from_head.unwrap_or(false) => Direction::After(0),
        None => Direction::Before(i64::MAX),
    };
    let grp = group(s, r.log_group_name, r.log_group_identifier)?;
    let stream = s
        .logs
        .stream_id(grp, &stream_name)?
        .ok_or_else(|| LogsError::not_found("The specified log stream does not exist."))?;
    let mut rows = s
        .logs
        .stream_events(stream, r.start_time, r.end_time, dir, limit)?;
    // Keep a page under 1 MB: a forward page drops its newest events, a backward
    // page its oldest, so the tokens continue where the page really ends.
    let mut bytes = 0usize;
    match dir {
        Direction::After(_) => {
            let keep = rows
                .iter()
                .take_while(|e| {
                    bytes += e.message.len() + 26;
                    bytes <= PAGE_BYTES
                })
                .count()
                .max(1);
            rows.truncate(keep);
        }
        Direction::Before(_) => {
            let keep = rows
                .iter()
                .rev()
                .take_while(|e| {
                    bytes += e.message.len() + 26;
                    bytes <= PAGE_BYTES
                })
                .count()
                .max(1);
            let drop = rows.len().saturating_sub(keep);
            rows.drain(..drop);
        }
    }
    let (forward, backward) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => (format!("f/{}", last.id), format!("b/{}", first.id)),
        // Nothing in that direction: the same position both ways, so a client
        // polling forward gets its own token back until something new arrives.
        _ => match dir {
            Direction::After(id) => (format!("f/{id}"), format!("b/{}", id.saturating_add(1))),
            // Nothing before `id`: reading forward from here must see only lines
            // stored from now on (a request without a token starts at the end).
            Direction::Before(id) => {
                let now = s.logs.last_id()?.min(id.saturating_sub(1));
                (format!("f/{now}"), format!("b/{id}"))
            }
        },
    };
    let events: Vec<Value> = rows
        .iter()
        .map(|e| json!({ "timestamp": e.ts, "message": e.message, "ingestionTime": e.ts }))
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": forward,
        "nextBackwardToken": backward,
    }))
}

fn parse_event_token(t: &str) -> Result<Direction, LogsError> {
    let (kind, id) = t.split_once('/').ok_or_else(LogsError::bad_token)?;
    let id: i64 = id.parse().map_err(|_| LogsError::bad_token())?;
    if id < 0 {
        return Err(LogsError::bad_token());
    }
    match kind {
        "f" => Ok(Direction::After(id)),
        "b" => Ok(Direction::Before(id)),
        _ => Err(LogsError::bad_token()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterLogEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn filter_log_events(s: &AppState, r: FilterLogEvents) -> Result<Value, LogsError> {
    let limit = limit(r.limit, 10_000)?;
    if r.log_stream_names.is_some() && r.log_stream_name_prefix.is_some() {
        return Err(LogsError::invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        ));
    }
    if let Some(names) = &r.log_stream_names {
        if names.is_empty() || names.len() > 100 {
            return Err(LogsError::constraint(
                format!("{} names", names.len()),
                "logStreamNames",
                "Member must have length between 1 and 100",
            ));
        }
        for n in names {
            stream_name_ok("logStreamNames", n)?;
        }
    }
    if let Some(p) = &r.log_stream_name_prefix {
        stream_name_ok("logStreamNamePrefix", p)?;
    }
    let pattern_text = r.filter_pattern.unwrap_or_default();
    if pattern_text.len() > 1024 {
        return Err(LogsError::constraint(
            format!("{} characters", pattern_text.len()),
            "filterPattern",
            "Member must have length less than or equal to 1024",
        ));
    }
    let pattern = FilterPattern::parse(&pattern_text)
        .map_err(|e| LogsError::invalid(format!("Invalid filter pattern: {e}")))?;
    let after = match r.next_token.as_deref() {
        Some(t) => decode_token(t, "e:")?
            .parse::<i64>()
            .map_err(|_| LogsError::bad_token())?,
        None => 0,
    };
    let grp = group(s, r.log_group_name, r.log_group_identifier)?;
    // The streams asked for, by name or prefix, as ids (a prefix is resolved in
    // pages of the group's stream list).
    let streams: Option<Vec<(i64, String)>> = match (&r.log_stream_names, &r.log_stream_name_prefix)
    {
        (Some(names), _) => {
            let mut ids = Vec::new();
            for n in names {
                if let Some(id) = s.logs.stream_id(grp, n)? {
                    ids.push((id, n.clone()));
                }
            }
            Some(ids)
        }
        (None, Some(prefix)) => Some(s.logs.stream_ids_with_prefix(grp, prefix)?),
        (None, None) => None,
    };
    let ids: Option<Vec<i64>> = streams
        .as_ref()
        .map(|v| v.iter().map(|(i, _)| *i).collect());
    let page = match &ids {
        Some(ids) if ids.is_empty() => crate::logs::FilterPage {
            rows: Vec::new(),
            next: None,
        },
        _ => s.logs.filter_events(
            grp,
            &crate::logs::EventQuery {
                after,
                start_ms: r.start_time,
                // endTime is inclusive here (events "later than" it are left out).
                end_ms: r.end_time.map(|e| e.saturating_add(1)),
                streams: ids.as_deref(),
                limit,
            },
            &|m| pattern.matches(m),
        )?,
    };
    let mut rows = page.rows;
    let mut next = page.next;
    let mut bytes = 0usize;
    let keep = rows
        .iter()
        .take_while(|e| {
            bytes += e.message.len() + e.stream.len() + 60;
            bytes <= PAGE_BYTES
        })
        .count()
        .max(1);
    if keep < rows.len() {
        rows.truncate(keep);
        next = rows.last().map(|e| e.id);
    }
    let searched: Vec<String> = match streams {
        Some(v) => v.into_iter().map(|(_, n)| n).collect(),
        None => {
            let mut names: Vec<String> = rows.iter().map(|e| e.stream.clone()).collect();
            names.sort();
            names.dedup();
            names
        }
    };
    let events: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "logStreamName": e.stream,
                "timestamp": e.ts,
                "message": e.message,
                "ingestionTime": e.ts,
                "eventId": e.id.to_string(),
            })
        })
        .collect();
    let searched: Vec<Value> = searched
        .into_iter()
        .map(|n| json!({ "logStreamName": n, "searchedCompletely": next.is_none() }))
        .collect();
    let mut out = json!({ "events": events, "searchedLogStreams": searched });
    if let Some(n) = next {
        out["nextToken"] = json!(encode_token(&format!("e:{n}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let t = encode_token("e:42");
        assert_eq!(decode_token(&t, "e:").unwrap(), "42");
        assert!(decode_token(&t, "g:").is_err(), "a token of another call");
        assert!(decode_token("!!!", "e:").is_err());
        assert_eq!(parse_event_token("f/7").unwrap(), Direction::After(7));
        assert_eq!(parse_event_token("b/7").unwrap(), Direction::Before(7));
        for bad in ["x/7", "f/", "f/-1", "f7", "b/abc"] {
            assert!(parse_event_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(limit(None, 50).unwrap(), 50);
        assert_eq!(limit(Some(1), 50).unwrap(), 1);
        assert!(limit(Some(0), 50)
            .unwrap_err()
            .message
            .contains("greater than or equal to 1"));
        assert!(limit(Some(51), 50)
            .unwrap_err()
            .message
            .contains("less than or equal to 50"));
    }
}
