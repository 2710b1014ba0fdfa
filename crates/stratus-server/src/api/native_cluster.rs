//! `GET /stratus/v1/logs` (what `stratus logs` reads) in a cluster: this node's
//! lines and those of every other healthy node (asked with the same query, marked
//! local), merged in timestamp order (ties by node, then id) and cut at `limit`.
//!
//! Row ids are per node, so the position to go on from is one per node: the answer's
//! `cursor` (base64 of `{"n1":120,"n2":57}`), given back as `?cursor=`. A node's
//! position moves to the last of its lines the answer holds; a node that did not
//! answer keeps its position (a tail picks its lines up once it answers again), and a
//! node the cursor does not name (it joined since) starts from the beginning of the
//! query's time range. Each event names its `node`. `nextToken` is that cursor too,
//! so a client that hands `nextToken` back as `after` (the dashboard does) pages
//! every node; a plain number as `after` is this node's own position, as on a single
//! node.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use super::LogQuery;
use crate::api::{json as json_response, AppState};
use crate::cluster::peers::{
    merge_pages, report_unreachable, Merged, PeerRequest, UNREACHABLE_HEADER,
};
use crate::error::ApiError;

fn decode_cursor(c: &str) -> Result<BTreeMap<String, i64>, ApiError> {
    let bad = || ApiError::invalid("cursor: not a cursor this API handed out");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let map: BTreeMap<String, i64> = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if map.values().any(|p| *p < 0) {
        return Err(bad());
    }
    Ok(map)
}

fn encode_cursor(map: &BTreeMap<String, i64>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!(map).to_string())
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The lines of `group` on every healthy node.
pub(super) async fn logs(s: AppState, group: String, q: LogQuery, limit: u32) -> Response {
    let me = s.peers.node_id().unwrap_or_default().to_string();
    let peers = s.peers.others().await;
    // `after` is what `nextToken` was: a cursor (or, from a client that began on a
    // single node's answer, this node's own position).
    let given = q.cursor.as_deref().or(q.after.as_deref());
    let mut positions = match given.map(|c| (c, c.parse::<i64>())) {
        None => BTreeMap::new(),
        Some((_, Ok(n))) => BTreeMap::from([(me.clone(), n)]),
        Some((c, Err(_))) => match decode_cursor(c) {
            Ok(m) => m,
            Err(e) => return e.into_response(),
        },
    };
    for p in peers.iter() {
        positions.entry(p.id.clone()).or_insert(0);
    }
    positions.entry(me.clone()).or_insert(0);
    let mut calls = Vec::new();
    let mut unreachable = Vec::new();
    for (node, pos) in &positions {
        if *node == me {
            continue;
        }
        let Some(peer) = peers.iter().find(|p| &p.id == node) else {
            unreachable.push((
                node.clone(),
                "not a healthy node of the cluster".to_string(),
            ));
            continue;
        };
        let mut path = format!(
            "/stratus/v1/logs?group={}&after={pos}&limit={limit}",
            enc(&group)
        );
        if let Some(start) = q.start {
            path.push_str(&format!("&start={start}"));
        }
        if let Some(f) = &q.filter {
            path.push_str(&format!("&filter={}", enc(f)));
        }
        calls.push((
            peer.clone(),
            PeerRequest {
                method: http::Method::GET,
                path,
                headers: Vec::new(),
                body: bytes::Bytes::new(),
                service: "lambda",
            },
        ));
    }
    let logs = s.logs.clone();
    let mine_after = positions.get(&me).copied().unwrap_or(0);
    let (g, start, filter) = (group.clone(), q.start, q.filter);
    let local = tokio::task::spawn_blocking(move || {
        logs.query(&g, mine_after, start, filter.as_deref(), limit)
    });
    let (local, theirs) = tokio::join!(local, s.peers.call_many(calls));
    let mine = match local {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => return ApiError::service(format!("cannot read logs: {e}")).into_response(),
        Err(e) => return ApiError::service(format!("cannot read logs: {e}")).into_response(),
    };
    let mut events: Vec<Merged<Value>> = mine
        .into_iter()
        .map(|e| Merged {
            ts: e.timestamp,
            node: me.clone(),
            id: e.id,
            event: json!({ "id": e.id, "timestamp": e.timestamp, "stream": e.stream, "message": e.message }),
        })
        .collect();
    for (peer, r) in theirs {
        let reply = match r {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                unreachable.push((
                    peer.id,
                    format!(
                        "answered {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ),
                ));
                continue;
            }
            Err(e) => {
                unreachable.push((peer.id, e.to_string()));
                continue;
            }
        };
        let v: Value = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(e) => {
                unreachable.push((peer.id, format!("an answer that is not JSON: {e}")));
                continue;
            }
        };
        for e in v["events"].as_array().into_iter().flatten() {
            let (Some(id), Some(ts)) = (e["id"].as_i64(), e["timestamp"].as_i64()) else {
                continue;
            };
            events.push(Merged {
                ts,
                node: peer.id.clone(),
                id,
                event: e.clone(),
            });
        }
    }
    let (events, _) = merge_pages(events, limit as usize, |_| true);
    for e in &events {
        if let Some(p) = positions.get_mut(&e.node) {
            *p = (*p).max(e.id);
        }
    }
    let list: Vec<Value> = events
        .into_iter()
        .map(|mut e| {
            e.event["node"] = json!(e.node);
            e.event
        })
        .collect();
    let mut resp = json_response(
        StatusCode::OK,
        &json!({
            "events": list,
            "nextToken": encode_cursor(&positions),
            "cursor": encode_cursor(&positions),
        }),
    );
    if let Some(nodes) = report_unreachable("reading logs", &unreachable) {
        if let Ok(v) = http::HeaderValue::from_str(&nodes) {
            resp.headers_mut().insert(UNREACHABLE_HEADER, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let m = BTreeMap::from([("n1".to_string(), 5), ("n2".to_string(), 0)]);
        assert_eq!(decode_cursor(&encode_cursor(&m)).unwrap(), m);
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{\"n\":-2}")
        )
        .is_err());
    }
}
