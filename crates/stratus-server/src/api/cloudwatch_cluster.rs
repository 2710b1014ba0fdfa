//! The CloudWatch metric reads in a cluster. Every node rolls up its own
//! invocations into per-minute aggregates (sum, count, min, max, and a histogram
//! for durations); a read through any node merges the other healthy nodes' minutes
//! with its own, minute by minute, before bucketing them into the asked periods —
//! so the statistics are those of the whole cluster, not an average of averages:
//!
//! - counters (`Invocations`, `Errors`, `Throttles`, …): sums add, so `Sum` is the
//!   cluster's total; `SampleCount`, `Minimum`, `Maximum` as for one node;
//! - measurements (`Duration`, `InitDuration`, `AsyncEventAge`): sums and counts
//!   add (`Average` is weighted by each node's count), `Minimum`/`Maximum` are the
//!   extremes, percentiles come from the merged histograms (exact to 1 %);
//! - concurrency gauges (`ConcurrentExecutions`, `UnreservedConcurrentExecutions`,
//!   `ProvisionedConcurrentExecutions`), sampled every second on each node, measure
//!   what runs *on that node*; the cluster's concurrency at an instant is the sum
//!   over nodes. A minute's merged `Average` is the sum of the nodes' averages,
//!   `Maximum`/`Minimum` the sums of theirs (a bound: the nodes' peaks need not
//!   coincide), `SampleCount` the samples of one node (one a second);
//! - other gauges (`ProvisionedConcurrencyUtilization`, queue depths) merge as
//!   measurements: weighted average, extremes.
//!
//! A peer is asked with `GetMetricStatistics` marked `x-stratus-fanout: minutes`
//! and answers its raw minutes (`{"minutes": [[minute, sum, count, min, max,
//! histogram], …]}`); `ListMetrics` is the union of every node's. A node that does
//! not answer is left out, named in `x-stratus-unreachable-nodes`.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Value};
use stratus_metrics::{dims, parse_dims, Agg, Histogram, MetricId, MetricsStore};

use super::{dimensions, str_field, time_field, CwError, JSON_TARGET_PREFIX};
use crate::api::AppState;
use crate::cluster::peers::{
    is_local, report_unreachable, PeerRequest, Peers, FANOUT_HEADER, UNREACHABLE_HEADER,
};

/// Whether another node asks for this node's raw minutes.
pub(super) fn wants_minutes(headers: &http::HeaderMap) -> bool {
    headers.get(FANOUT_HEADER).is_some_and(|v| v == "minutes")
}

/// Gauges that count what runs on a node: the cluster's value is the sum over nodes.
fn additive_gauge(metric: &str) -> bool {
    matches!(
        metric,
        "ConcurrentExecutions"
            | "UnreservedConcurrentExecutions"
            | "ProvisionedConcurrentExecutions"
    )
}

/// One minute of `metric` on several nodes, as one.
fn combine(metric: &str, nodes: &[Agg]) -> Option<Agg> {
    let first = nodes.first()?.clone();
    if additive_gauge(metric) {
        let count = nodes.iter().map(|a| a.count).max().unwrap_or(0).max(1);
        let mean: f64 = nodes
            .iter()
            .filter(|a| a.count > 0)
            .map(|a| a.sum / a.count as f64)
            .sum();
        return Some(Agg {
            sum: mean * count as f64,
            count,
            min: nodes.iter().map(|a| a.min).sum(),
            max: nodes.iter().map(|a| a.max).sum(),
            hist: None,
        });
    }
    let mut out = first;
    for a in &nodes[1..] {
        out.merge(a);
    }
    Some(out)
}

fn minute_of(secs: i64) -> i64 {
    secs.div_euclid(60) * 60
}

/// Where a read's data comes from: this node's store, and in a cluster (unless the
/// request is itself a peer's) the other nodes.
pub(crate) struct Source {
    store: MetricsStore,
    fan: Option<(Peers, tokio::runtime::Handle)>,
    unreachable: Mutex<Vec<(String, String)>>,
}

impl Source {
    pub(crate) fn new(s: &AppState, headers: &http::HeaderMap) -> Self {
        let fan = (s.peers.is_cluster() && !is_local(headers))
            .then(|| (s.peers.clone(), tokio::runtime::Handle::current()));
        Self {
            store: s.metrics.clone(),
            fan,
            unreachable: Mutex::new(Vec::new()),
        }
    }

    /// The nodes that did not answer.
    pub(crate) fn unreachable(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.unreachable.lock())
    }

    /// Asks every other node (blocking: this runs on a blocking thread); answers
    /// the bodies of those that answered 200.
    fn ask(&self, op: &str, body: Value, minutes: bool) -> Vec<(String, Value)> {
        let Some((peers, rt)) = &self.fan else {
            return Vec::new();
        };
        let mut headers = vec![
            ("x-amz-target", format!("{JSON_TARGET_PREFIX}{op}")),
            ("content-type", "application/x-amz-json-1.0".to_string()),
        ];
        if minutes {
            headers.push((FANOUT_HEADER, "minutes".to_string()));
        }
        let req = PeerRequest {
            method: http::Method::POST,
            path: "/".into(),
            headers,
            body: Bytes::from(body.to_string()),
            service: "monitoring",
        };
        let replies = rt.block_on(peers.call_all(req));
        let mut out = Vec::new();
        let mut failed = self.unreachable.lock();
        for (peer, r) in replies {
            match r {
                Ok(reply) if reply.status == 200 => match serde_json::from_slice(&reply.body) {
                    Ok(v) => out.push((peer.id, v)),
                    Err(e) => failed.push((peer.id, format!("an answer that is not JSON: {e}"))),
                },
                Ok(reply) => failed.push((
                    peer.id,
                    format!(
                        "answered {}: {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    ),
                )),
                Err(e) => failed.push((peer.id, e.to_string())),
            }
        }
        out
    }

    /// CloudWatch statistics of the whole cluster: every node's minutes of
    /// `[start, end)` merged minute by minute, then per `period` (a multiple of
    /// 60), each bucket stamped with its start; buckets without data left out.
    pub(super) fn statistics(
        &self,
        namespace: &str,
        metric: &str,
        dims: &str,
        start: i64,
        end: i64,
        period: i64,
    ) -> Result<Vec<(i64, Agg)>, String> {
        if self.fan.is_none() {
            return self
                .store
                .statistics(namespace, metric, dims, start, end, period)
                .map_err(|e| e.to_string());
        }
        let start_minute = minute_of(start);
        let period = period.max(60);
        let mut buckets: BTreeMap<i64, Agg> = BTreeMap::new();
        for (m, a) in self.minutes(namespace, metric, dims, start, end)? {
            let b = start_minute + (m - start_minute).div_euclid(period) * period;
            buckets.entry(b).and_modify(|x| x.merge(&a)).or_insert(a);
        }
        Ok(buckets.into_iter().collect())
    }

    /// The dashboard's series (`GET /stratus/v1/metrics/series`) of the cluster.
    pub(crate) fn series(
        &self,
        function: Option<&str>,
        qualifier: Option<&str>,
        from: i64,
        to: i64,
        period: i64,
    ) -> Result<Vec<stratus_metrics::SeriesPoint>, String> {
        if self.fan.is_none() {
            return self
                .store
                .series(function, qualifier, from, to, period)
                .map_err(|e| e.to_string());
        }
        MetricsStore::series_of(function, qualifier, from, to, period, &|m, d, a, b| {
            self.minutes(stratus_metrics::LAMBDA, m, d, a, b)
        })
    }

    /// Every node's minutes of `[start, end)`, merged minute by minute.
    fn minutes(
        &self,
        namespace: &str,
        metric: &str,
        dims: &str,
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<i64, Agg>, String> {
        let mut by_minute: BTreeMap<i64, Vec<Agg>> = BTreeMap::new();
        for (m, a) in self
            .store
            .minutes(namespace, metric, dims, start, end)
            .map_err(|e| e.to_string())?
        {
            by_minute.entry(m).or_default().push(a);
        }
        let dimensions: Vec<Value> = parse_dims(dims)
            .into_iter()
            .map(|(n, v)| json!({ "Name": n, "Value": v }))
            .collect();
        let body = json!({
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "StartTime": start,
            "EndTime": end,
            "Period": 60,
            "Statistics": ["Sum"],
        });
        for (node, v) in self.ask("GetMetricStatistics", body, true) {
            match decode_minutes(&v) {
                Some(rows) => {
                    for (m, a) in rows {
                        by_minute.entry(m).or_default().push(a);
                    }
                }
                None => self
                    .unreachable
                    .lock()
                    .push((node, "answered minutes of another form".into())),
            }
        }
        Ok(by_minute
            .into_iter()
            .filter_map(|(m, nodes)| Some((m, combine(metric, &nodes)?)))
            .collect())
    }

    /// ListMetrics over every node.
    pub(super) fn list_metrics(
        &self,
        namespace: Option<&str>,
        metric: Option<&str>,
        filters: &[(String, Option<String>)],
    ) -> Result<Vec<MetricId>, String> {
        let mine = self
            .store
            .list_metrics(namespace, metric, filters)
            .map_err(|e| e.to_string())?;
        if self.fan.is_none() {
            return Ok(mine);
        }
        let mut all: BTreeSet<MetricId> = mine.into_iter().collect();
        let mut body = json!({});
        if let Some(n) = namespace {
            body["Namespace"] = json!(n);
        }
        if let Some(m) = metric {
            body["MetricName"] = json!(m);
        }
        if !filters.is_empty() {
            body["Dimensions"] = filters
                .iter()
                .map(|(n, v)| match v {
                    Some(v) => json!({ "Name": n, "Value": v }),
                    None => json!({ "Name": n }),
                })
                .collect();
        }
        for (_, v) in self.ask("ListMetrics", body, false) {
            for m in v["Metrics"].as_array().into_iter().flatten() {
                let pairs: Vec<(&str, &str)> = m["Dimensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| Some((d["Name"].as_str()?, d["Value"].as_str()?)))
                    .collect();
                if let (Some(ns), Some(name)) = (m["Namespace"].as_str(), m["MetricName"].as_str())
                {
                    all.insert(MetricId {
                        namespace: ns.to_string(),
                        metric: name.to_string(),
                        dims: dims(&pairs),
                    });
                }
            }
        }
        Ok(all.into_iter().collect())
    }
}

/// `[[minute, sum, count, min, max, histogram or null], …]`.
fn decode_minutes(v: &Value) -> Option<Vec<(i64, Agg)>> {
    let mut out = Vec::new();
    for row in v["minutes"].as_array()? {
        let r = row.as_array()?;
        let hist = match r.get(5)? {
            Value::Null => None,
            h => Some(Histogram::decode(h.as_str()?)),
        };
        out.push((
            r.first()?.as_i64()?,
            Agg {
                sum: r.get(1)?.as_f64()?,
                count: r.get(2)?.as_u64()?,
                min: r.get(3)?.as_f64()?,
                max: r.get(4)?.as_f64()?,
                hist,
            },
        ));
    }
    Some(out)
}

fn encode_minutes(rows: &BTreeMap<i64, Agg>) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|(m, a)| {
            json!([
                m,
                a.sum,
                a.count,
                a.min,
                a.max,
                a.hist.as_ref().map(Histogram::encode)
            ])
        })
        .collect();
    json!({ "minutes": rows })
}

/// This node's raw minutes of the metric a peer's `GetMetricStatistics` names.
pub(super) async fn local_minutes(
    store: &MetricsStore,
    op: &str,
    input: &Value,
) -> Result<Response, CwError> {
    if op != "GetMetricStatistics" {
        return Err(CwError::invalid(format!(
            "{FANOUT_HEADER}: minutes is answered for GetMetricStatistics only, not {op}"
        )));
    }
    let namespace = str_field(input, "Namespace")?.to_string();
    let metric = str_field(input, "MetricName")?.to_string();
    let start = time_field(input, "StartTime")?;
    let end = time_field(input, "EndTime")?;
    let d = dimensions(input.get("Dimensions"))?;
    let store = store.clone();
    let rows =
        tokio::task::spawn_blocking(move || store.minutes(&namespace, &metric, &d, start, end))
            .await
            .map_err(|e| CwError::internal(e.to_string()))?
            .map_err(|e| CwError::internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.0")],
        encode_minutes(&rows).to_string(),
    )
        .into_response())
}

/// Names the nodes that did not answer on `resp` (and logs them).
pub(crate) fn mark_unreachable(resp: &mut Response, failures: &[(String, String)]) {
    if let Some(nodes) = report_unreachable("reading metrics", failures) {
        if let Ok(v) = http::HeaderValue::from_str(&nodes) {
            resp.headers_mut().insert(UNREACHABLE_HEADER, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(values: &[f64], measured: bool) -> Agg {
        let mut h = Histogram::default();
        for v in values {
            h.record(*v);
        }
        Agg {
            sum: values.iter().sum(),
            count: values.len() as u64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            hist: measured.then_some(h),
        }
    }

    #[test]
    fn counters_add_and_averages_are_weighted() {
        let a = agg(&[1.0, 1.0, 1.0], false);
        let b = agg(&[1.0], false);
        let c = combine("Invocations", &[a, b]).unwrap();
        assert_eq!(c.stat("Sum"), Some(4.0));
        // Durations: 3 calls of 10 ms on one node, 1 of 50 ms on another.
        let d = combine(
            "Duration",
            &[agg(&[10.0, 10.0, 10.0], true), agg(&[50.0], true)],
        )
        .unwrap();
        assert_eq!(d.stat("Average"), Some(20.0));
        assert_eq!(d.stat("Maximum"), Some(50.0));
        assert_eq!(d.stat("Minimum"), Some(10.0));
        assert_eq!(d.stat("SampleCount"), Some(4.0));
        let p99 = d.stat("p99").unwrap();
        assert!((p99 - 50.0).abs() < 0.5, "{p99}");
    }

    #[test]
    fn concurrency_gauges_add_across_nodes() {
        // One node ran 2 at every sample, the other 0 then 4.
        let a = agg(&[2.0, 2.0], false);
        let b = agg(&[0.0, 4.0], false);
        let c = combine("ConcurrentExecutions", &[a, b]).unwrap();
        assert_eq!(c.stat("Average"), Some(4.0));
        assert_eq!(c.stat("Maximum"), Some(6.0));
        assert_eq!(c.stat("SampleCount"), Some(2.0));
    }

    #[test]
    fn minutes_round_trip() {
        let rows = BTreeMap::from([(60, agg(&[3.0, 5.0], true)), (120, agg(&[1.0], false))]);
        let back = decode_minutes(&encode_minutes(&rows)).unwrap();
        assert_eq!(back, rows.into_iter().collect::<Vec<_>>());
        assert!(decode_minutes(&json!({ "minutes": [[1, "x"]] })).is_none());
    }
}
