//! The CloudWatch Logs read API in a cluster: every node keeps the lines of the
//! environments it ran (`logs.db`), so a read through any node asks the other
//! healthy nodes for theirs (the same operation, marked local, `cluster::peers`)
//! and merges:
//!
//! - **FilterLogEvents**: each node answers a page from its own position; the events
//!   are merged in timestamp order (ties by node, then id) and cut at `limit` (and
//!   1 MB). The token holds every node's position (`c:{"n1":120,"n2":0}`, base64):
//!   a node whose events were all taken goes on from its own next token, one whose
//!   events were cut goes on after the last one taken, and one that reached its end
//!   is left out (the query ends when none is left). `eventId` is `{node}-{id}`, so
//!   `aws logs tail` (which drops events it has seen by id) keeps both nodes' lines.
//! - **DescribeLogStreams / DescribeLogGroups**: each node answers its first page
//!   after the same cursor; the pages are merged in the operation's order and cut
//!   at `limit`. The cursor (the last stream's or group's sort key) is the same on
//!   every node, so the token keeps its single-node form. Stream names are
//!   `YYYY/MM/DD/[$LATEST]` + 32 random hex digits: they do not collide across nodes.
//!   A group that exists on several nodes is listed once, with its oldest line.
//! - **GetLogEvents**: a stream lives on one node. This node answers if it has the
//!   stream; otherwise the node that has it answers, with its tokens (the next page
//!   finds it again the same way).
//!
//! A node that does not answer in time is left out: the answer carries
//! `x-stratus-unreachable-nodes` and a warning is logged. A group that no answering
//! node has is `ResourceNotFoundException`, as on one node.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{
    decode_token, encode_token, limit, LogsError, CONTENT_TYPE, PAGE_BYTES, TARGET_PREFIX,
};
use crate::api::AppState;
use crate::cluster::peers::{
    merge_pages, report_unreachable, Merged, Peer, PeerRequest, UNREACHABLE_HEADER,
};

/// Nodes that did not answer: (node, why).
type Unreachable = Vec<(String, String)>;

/// Answers one call of the API with every healthy node's logs.
pub(super) async fn handle(s: AppState, op: String, input: Value) -> Response {
    let result = match op.as_str() {
        "FilterLogEvents" => filter(&s, input).await,
        "DescribeLogStreams" => streams(&s, input).await,
        "DescribeLogGroups" => groups(&s, input).await,
        "GetLogEvents" => owner(&s, &op, input).await,
        _ => local(&s, &op, input).await.map(|v| (v, Vec::new())),
    };
    match result {
        Ok((v, unreachable)) => {
            let mut resp = (
                StatusCode::OK,
                [("content-type", CONTENT_TYPE)],
                v.to_string(),
            )
                .into_response();
            if let Some(nodes) = report_unreachable("reading logs", &unreachable) {
                if let Ok(v) = http::HeaderValue::from_str(&nodes) {
                    resp.headers_mut().insert(UNREACHABLE_HEADER, v);
                }
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// This node's own answer.
async fn local(s: &AppState, op: &str, input: Value) -> Result<Value, LogsError> {
    let (s, op) = (s.clone(), op.to_string());
    tokio::task::spawn_blocking(move || super::call(&s, &op, input))
        .await
        .unwrap_or_else(|e| Err(LogsError::unavailable(e)))
}

fn is_not_found(e: &LogsError) -> bool {
    e.kind == "ResourceNotFoundException"
}

fn peer_request(op: &str, input: &Value) -> PeerRequest {
    PeerRequest {
        method: http::Method::POST,
        path: "/".into(),
        headers: vec![
            ("x-amz-target", format!("{TARGET_PREFIX}{op}")),
            ("content-type", CONTENT_TYPE.into()),
        ],
        body: Bytes::from(input.to_string()),
        service: "logs",
    }
}

/// What the nodes asked answered.
#[derive(Default)]
struct Gathered {
    /// (node, answer) of the nodes that answered.
    answers: Vec<(String, Value)>,
    /// Some node does not have the group or stream.
    not_found: Option<LogsError>,
    unreachable: Unreachable,
}

/// Asks this node (with `local_input`, if any) and each peer (with its input).
async fn gather(
    s: &AppState,
    op: &str,
    local_input: Option<Value>,
    peer_inputs: Vec<(Peer, Value)>,
) -> Result<Gathered, LogsError> {
    let me = s.peers.node_id().unwrap_or_default().to_string();
    let calls = peer_inputs
        .iter()
        .map(|(p, v)| (p.clone(), peer_request(op, v)))
        .collect();
    let local_answer = async {
        match local_input {
            Some(v) => Some(local(s, op, v).await),
            None => None,
        }
    };
    let (mine, theirs) = tokio::join!(local_answer, s.peers.call_many(calls));
    let mut g = Gathered::default();
    match mine {
        Some(Ok(v)) => g.answers.push((me, v)),
        Some(Err(e)) if is_not_found(&e) => g.not_found = Some(e),
        // Bad input is bad on every node: said once, as on one node.
        Some(Err(e)) => return Err(e),
        None => {}
    }
    for (peer, r) in theirs {
        match r {
            Ok(reply) if reply.status == 200 => match serde_json::from_slice(&reply.body) {
                Ok(v) => g.answers.push((peer.id, v)),
                Err(e) => g
                    .unreachable
                    .push((peer.id, format!("an answer that is not JSON: {e}"))),
            },
            Ok(reply) => {
                let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                let kind = v["__type"].as_str().unwrap_or_default();
                if kind == "ResourceNotFoundException" {
                    if g.not_found.is_none() {
                        g.not_found = Some(LogsError::not_found(
                            v["message"].as_str().unwrap_or_default(),
                        ));
                    }
                } else {
                    g.unreachable.push((
                        peer.id,
                        format!(
                            "answered {} {kind}: {}",
                            reply.status,
                            v["message"].as_str().unwrap_or_default()
                        ),
                    ));
                }
            }
            Err(e) => g.unreachable.push((peer.id, e.to_string())),
        }
    }
    Ok(g)
}

/// Asks every healthy node the same.
async fn gather_all(s: &AppState, op: &str, input: &Value) -> Result<Gathered, LogsError> {
    let peers = s.peers.others().await;
    let inputs = peers.iter().map(|p| (p.clone(), input.clone())).collect();
    gather(s, op, Some(input.clone()), inputs).await
}

/// The answers, or the not-found error when no node that answered has the group.
fn answered(g: Gathered) -> Result<(Vec<(String, Value)>, Unreachable), LogsError> {
    if g.answers.is_empty() {
        if let Some(e) = g.not_found {
            return Err(e);
        }
    }
    Ok((g.answers, g.unreachable))
}

fn list_of<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

/// GetLogEvents: this node if it has the stream, else the node that has it.
async fn owner(s: &AppState, op: &str, input: Value) -> Result<(Value, Unreachable), LogsError> {
    let e = match local(s, op, input.clone()).await {
        Ok(v) => return Ok((v, Vec::new())),
        Err(e) if is_not_found(&e) => e,
        Err(e) => return Err(e),
    };
    let peers = s.peers.others().await;
    let inputs = peers.iter().map(|p| (p.clone(), input.clone())).collect();
    let g = gather(s, op, None, inputs).await?;
    match g.answers.into_iter().next() {
        Some((_, v)) => Ok((v, g.unreachable)),
        None if g.unreachable.is_empty() => Err(e),
        // The stream may be on a node that did not answer.
        None => {
            report_unreachable("reading a log stream", &g.unreachable);
            Err(e)
        }
    }
}

/// DescribeLogStreams over every node.
async fn streams(s: &AppState, input: Value) -> Result<(Value, Unreachable), LogsError> {
    let g = gather_all(s, "DescribeLogStreams", &input).await?;
    let (answers, unreachable) = answered(g)?;
    // The local answer validated the input: these are known good.
    let limit = limit(input["limit"].as_i64(), 50)? as usize;
    let by_last = input["orderBy"].as_str() == Some("LastEventTime");
    let descending = input["descending"].as_bool().unwrap_or(false);
    let mut more = answers.iter().any(|(_, v)| v["nextToken"].is_string());
    let mut all: Vec<Value> = answers
        .iter()
        .flat_map(|(_, v)| list_of(v, "logStreams").cloned())
        .collect();
    let key = |v: &Value| {
        (
            if by_last {
                v["lastEventTimestamp"].as_i64().unwrap_or(0)
            } else {
                0
            },
            v["logStreamName"].as_str().unwrap_or_default().to_string(),
        )
    };
    all.sort_by_key(key);
    if descending {
        all.reverse();
    }
    more |= all.len() > limit;
    all.truncate(limit);
    let mut out = json!({ "logStreams": all });
    if more {
        if let Some(last) = all.last() {
            out["nextToken"] = json!(encode_token(&format!(
                "s:{}:{}",
                last["lastEventTimestamp"].as_i64().unwrap_or(0),
                last["logStreamName"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok((out, unreachable))
}

/// DescribeLogGroups over every node: a group on several nodes is listed once.
async fn groups(s: &AppState, input: Value) -> Result<(Value, Unreachable), LogsError> {
    let g = gather_all(s, "DescribeLogGroups", &input).await?;
    let (answers, unreachable) = answered(g)?;
    let limit = limit(input["limit"].as_i64(), 50)? as usize;
    let named = input["logGroupIdentifiers"].is_array();
    let mut more = answers.iter().any(|(_, v)| v["nextToken"].is_string());
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for (_, v) in &answers {
        for group in list_of(v, "logGroups") {
            let name = group["logGroupName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let created = group["creationTime"].as_i64().unwrap_or(0);
            match by_name.get_mut(&name) {
                None => {
                    by_name.insert(name, group.clone());
                }
                Some(have) => {
                    // The oldest kept line of any node (0: a node has none left).
                    let old = have["creationTime"].as_i64().unwrap_or(0);
                    if created > 0 && (old == 0 || created < old) {
                        have["creationTime"] = json!(created);
                    }
                }
            }
        }
    }
    more |= by_name.len() > limit;
    let list: Vec<Value> = by_name.into_values().take(limit).collect();
    let mut out = json!({ "logGroups": list });
    if more && !named {
        if let Some(last) = list.last() {
            out["nextToken"] = json!(encode_token(&format!(
                "g:{}",
                last["logGroupName"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok((out, unreachable))
}

/// The positions a FilterLogEvents token holds: node → the id to go on after.
fn decode_positions(token: &str) -> Result<BTreeMap<String, i64>, LogsError> {
    let raw = decode_token(token, "c:")?;
    let map: BTreeMap<String, i64> =
        serde_json::from_str(&raw).map_err(|_| LogsError::bad_token())?;
    if map.values().any(|p| *p < 0) {
        return Err(LogsError::bad_token());
    }
    Ok(map)
}

fn encode_positions(map: &BTreeMap<String, i64>) -> String {
    encode_token(&format!("c:{}", json!(map)))
}

/// FilterLogEvents over every node, merged in timestamp order.
async fn filter(s: &AppState, input: Value) -> Result<(Value, Unreachable), LogsError> {
    let me = s.peers.node_id().unwrap_or_default().to_string();
    let peers = s.peers.others().await;
    let limit = match input["limit"].as_i64() {
        // A limit of the wrong type is refused by the local call.
        None if !input["limit"].is_null() => 10_000,
        l => limit(l, 10_000)? as usize,
    };
    if !(input["nextToken"].is_null() || input["nextToken"].is_string()) {
        return Err(LogsError::serialization(
            "Could not read the request: member 'nextToken' must be a string",
        ));
    }
    let positions: BTreeMap<String, i64> = match input["nextToken"].as_str() {
        None => std::iter::once(me.clone())
            .chain(peers.iter().map(|p| p.id.clone()))
            .map(|id| (id, 0))
            .collect(),
        Some(t) => decode_positions(t)?,
    };
    let mut unreachable: Unreachable = Vec::new();
    let (mut local_input, mut peer_inputs) = (None, Vec::new());
    for (node, pos) in &positions {
        let mut v = input.clone();
        if let Some(m) = v.as_object_mut() {
            if *pos == 0 {
                m.remove("nextToken");
            } else {
                m.insert("nextToken".into(), json!(encode_token(&format!("e:{pos}"))));
            }
        }
        if *node == me {
            local_input = Some(v);
        } else if let Some(p) = peers.iter().find(|p| p.id == *node) {
            peer_inputs.push((p.clone(), v));
        } else {
            unreachable.push((node.clone(), "not a healthy node of the cluster".into()));
        }
    }
    if local_input.is_none() {
        // This node has nothing left to read, but the input is still checked here.
        let mut probe = input.clone();
        if let Some(m) = probe.as_object_mut() {
            m.remove("nextToken");
            m.insert("limit".into(), json!(1));
        }
        match local(s, "FilterLogEvents", probe).await {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    let g = gather(s, "FilterLogEvents", local_input, peer_inputs).await?;
    unreachable.extend(g.unreachable);
    if g.answers.is_empty() && unreachable.is_empty() {
        if let Some(e) = g.not_found {
            return Err(e);
        }
    }
    let mut events = Vec::new();
    let mut next_of: HashMap<String, Option<i64>> = HashMap::new();
    let mut searched = BTreeSet::new();
    for (node, answer) in &g.answers {
        for e in list_of(answer, "events") {
            let id = e["eventId"]
                .as_str()
                .and_then(|i| i.parse::<i64>().ok())
                .unwrap_or(0);
            events.push(Merged {
                ts: e["timestamp"].as_i64().unwrap_or(0),
                node: node.clone(),
                id,
                event: e.clone(),
            });
        }
        let next = match answer["nextToken"].as_str() {
            Some(t) => Some(
                decode_token(t, "e:")
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| {
                        LogsError::unavailable(format!(
                            "node {node} answered a token of another form"
                        ))
                    })?,
            ),
            None => None,
        };
        next_of.insert(node.clone(), next);
        for st in list_of(answer, "searchedLogStreams") {
            if let Some(n) = st["logStreamName"].as_str() {
                searched.insert(n.to_string());
            }
        }
    }
    // A page holds at most `limit` events and 1 MB (at least one event).
    let mut bytes = 0usize;
    let (taken, cut) = merge_pages(events, limit, |v| {
        bytes += v["message"].as_str().map_or(0, str::len)
            + v["logStreamName"].as_str().map_or(0, str::len)
            + 60;
        bytes <= PAGE_BYTES
    });
    let mut next = BTreeMap::new();
    for (node, pos) in &positions {
        let Some(own_next) = next_of.get(node) else {
            // Did not answer, or has no such group: done with it.
            continue;
        };
        if cut.contains(node) {
            let last = taken.iter().rev().find(|e| &e.node == node).map(|e| e.id);
            next.insert(node.clone(), last.unwrap_or(*pos));
        } else if let Some(n) = own_next {
            next.insert(node.clone(), *n);
        }
    }
    let list: Vec<Value> = taken
        .iter()
        .map(|e| {
            let mut v = e.event.clone();
            v["eventId"] = json!(format!("{}-{}", e.node, e.id));
            v
        })
        .collect();
    let searched: Vec<Value> = searched
        .into_iter()
        .map(|n| json!({ "logStreamName": n, "searchedCompletely": next.is_empty() }))
        .collect();
    let mut out = json!({ "events": list, "searchedLogStreams": searched });
    if !next.is_empty() {
        out["nextToken"] = json!(encode_positions(&next));
    }
    Ok((out, unreachable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_refuse_other_tokens() {
        let map = BTreeMap::from([("n1".to_string(), 12), ("n2".to_string(), 0)]);
        let t = encode_positions(&map);
        assert_eq!(decode_positions(&t).unwrap(), map);
        assert!(decode_positions(&encode_token("e:12")).is_err());
        assert!(decode_positions(&encode_token("c:{\"n1\":-1}")).is_err());
        assert!(decode_positions(&encode_token("c:[1]")).is_err());
    }
}
