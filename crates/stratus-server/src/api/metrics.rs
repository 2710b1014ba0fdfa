//! Metrics routes: `GET /metrics` (Prometheus text format), the dashboard's
//! `GET /stratus/v1/metrics/series`, and the CloudWatch metric API in the RPC v2
//! CBOR protocol (`POST /service/GraniteServiceVersion20100801/operation/{Op}`, see
//! `cloudwatch.rs`).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;

use super::{cloudwatch, json, AppState};
use crate::error::ApiError;

/// The most points one answer holds (one day of minutes).
const MAX_SERIES_MINUTES: i64 = 1440;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/stratus/v1/metrics/series", get(series))
        .route(
            "/service/GraniteServiceVersion20100801/operation/{op}",
            post(cloudwatch_cbor),
        )
}

/// `GET /metrics`.
pub(crate) async fn prometheus(State(s): State<AppState>) -> Response {
    scrape(&s.metrics, s.peers.node_id()).await
}

/// The Prometheus exposition of `store` (also served unsigned with `--metrics-open`);
/// in a cluster every series carries `node="<id>"` (`node`), so one Prometheus
/// scraping every node keeps them apart.
pub async fn scrape(store: &stratus_metrics::MetricsStore, node: Option<&str>) -> Response {
    store.sync().await;
    let text = store.prometheus();
    let text = match node {
        Some(id) => with_node_label(&text, id),
        None => text,
    };
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `text` (OpenMetrics) with the label `node="<id>"` first on every sample line.
fn with_node_label(text: &str, id: &str) -> String {
    let value = id.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else {
            // `name{labels} value` or `name value`: the name ends at `{` or ' '.
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let (name, rest) = line.split_at(end);
            out.push_str(name);
            match rest.strip_prefix('{') {
                Some(labels) if labels.starts_with('}') => {
                    out.push_str(&format!("{{node=\"{value}\""));
                    out.push_str(labels);
                }
                Some(labels) => {
                    out.push_str(&format!("{{node=\"{value}\","));
                    out.push_str(labels);
                }
                None => {
                    out.push_str(&format!("{{node=\"{value}\"}}"));
                    out.push_str(rest);
                }
            }
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, serde::Deserialize)]
struct SeriesQuery {
    function: Option<String>,
    qualifier: Option<String>,
    minutes: Option<i64>,
    /// Epoch seconds; with `end`, instead of `minutes` (for `stratus metrics`).
    start: Option<i64>,
    end: Option<i64>,
    /// Seconds per point, a multiple of 60 (default 60).
    period: Option<i64>,
}

/// `GET /stratus/v1/metrics/series?function=NAME[&qualifier=Q]&minutes=60`.
async fn series(
    State(s): State<AppState>,
    headers: http::HeaderMap,
    Query(q): Query<SeriesQuery>,
) -> Response {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let period = q.period.unwrap_or(60);
    if period < 60 || period % 60 != 0 {
        return ApiError::invalid(format!("period must be a multiple of 60, not {period}"))
            .into_response();
    }
    let (from, to) = match (q.start, q.end) {
        (Some(a), Some(b)) if a <= b => {
            let b = b.min(now);
            let a = a.min(b);
            if (b - a) / period >= MAX_SERIES_MINUTES {
                return ApiError::invalid(format!(
                    "start to end holds more than {MAX_SERIES_MINUTES} periods of {period} s; give a longer period"
                ))
                .into_response();
            }
            (a, b)
        }
        (Some(_), Some(_)) => {
            return ApiError::invalid("start must not be after end").into_response()
        }
        (None, None) => {
            let minutes = q.minutes.unwrap_or(60);
            if !(1..=MAX_SERIES_MINUTES).contains(&minutes) {
                return ApiError::invalid(format!(
                    "minutes must be between 1 and {MAX_SERIES_MINUTES}, not {minutes}"
                ))
                .into_response();
            }
            (now - (minutes - 1) * 60, now)
        }
        _ => return ApiError::invalid("start and end go together").into_response(),
    };
    if q.qualifier.is_some() && q.function.is_none() {
        return ApiError::invalid("qualifier needs function").into_response();
    }
    s.metrics.sync().await;
    // In a cluster, every node's minutes (`cloudwatch_cluster.rs`).
    let src = cloudwatch::Source::new(&s, &headers);
    let (f, ql) = (q.function.clone(), q.qualifier.clone());
    let points = tokio::task::spawn_blocking(move || {
        let points = src.series(f.as_deref(), ql.as_deref(), from, to, period);
        (points, src.unreachable())
    })
    .await;
    let mut failed = Vec::new();
    let points = points.map(|(points, unreachable)| {
        failed = unreachable;
        points
    });
    let mut resp = match points {
        Ok(Ok(points)) => json(
            StatusCode::OK,
            &serde_json::json!({
                "function": q.function,
                "qualifier": q.qualifier,
                "period": period,
                "points": points,
            }),
        ),
        Ok(Err(e)) => ApiError::service(e).into_response(),
        Err(e) => ApiError::service(e.to_string()).into_response(),
    };
    cloudwatch::mark_unreachable(&mut resp, &failed);
    resp
}

async fn cloudwatch_cbor(
    State(s): State<AppState>,
    Path(op): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response {
    cloudwatch::handle_cbor(&s, &headers, &op, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_gets_the_node_label() {
        let text = "# HELP x X.\n# TYPE x counter\nx_total{function_name=\"f\"} 2\nprocess_open_fds 7\ny{} 1\n# EOF\n";
        let got = with_node_label(text, "n1");
        assert_eq!(
            got,
            "# HELP x X.\n# TYPE x counter\nx_total{node=\"n1\",function_name=\"f\"} 2\nprocess_open_fds{node=\"n1\"} 7\ny{node=\"n1\"} 1\n# EOF\n"
        );
    }
}
