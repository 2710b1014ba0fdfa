//! `stratus logs -f NAME [--tail] [--startTime 30m] [--filter text] [--interval ms]`.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{parse_start_time, server_error, unreachable};
use crate::client::Api;
use crate::project;
use crate::Global;

/// `stratus logs` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogsArgs {
    /// The function (its key under `functions:`).
    #[arg(long, short = 'f')]
    function: String,
    /// Keep printing new lines as they arrive.
    #[arg(long, short = 't')]
    tail: bool,
    /// Start from `30m`, `2h`, `1d`, an ISO 8601 time or epoch ms (default: everything;
    /// 10m with --tail).
    #[arg(long = "startTime")]
    start_time: Option<String>,
    /// Only lines containing this text.
    #[arg(long)]
    filter: Option<String>,
    /// Milliseconds between polls with --tail.
    #[arg(long, short = 'i', default_value_t = 1000, value_name = "MS")]
    interval: u64,
}

fn query(
    group: &str,
    after: i64,
    cursor: Option<&str>,
    start: Option<i64>,
    filter: Option<&str>,
) -> String {
    let mut q = format!(
        "/stratus/v1/logs?group={}&after={after}&limit=10000",
        percent_encoding::utf8_percent_encode(group, percent_encoding::NON_ALPHANUMERIC)
    );
    // A cluster answers a cursor holding every node's position (base64url).
    if let Some(c) = cursor {
        q.push_str(&format!("&cursor={c}"));
    }
    if let Some(s) = start {
        q.push_str(&format!("&start={s}"));
    }
    if let Some(f) = filter {
        q.push_str(&format!(
            "&filter={}",
            percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    q
}

pub(crate) async fn run(g: &Global, args: LogsArgs) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let f = p.function(&args.function)?;
    let group = format!("/aws/lambda/{}", f.name);
    let api = Api::new(&g.endpoint);
    let now = stratus_server::logs::now_ms();
    let start = match (&args.start_time, args.tail) {
        (Some(s), _) => Some(parse_start_time(s, now)?),
        (None, true) => Some(now - 10 * 60_000),
        (None, false) => None,
    };
    let mut after = 0i64;
    let mut cursor: Option<String> = None;
    loop {
        let r = api
            .call(
                "GET",
                &query(
                    &group,
                    after,
                    cursor.as_deref(),
                    start,
                    args.filter.as_deref(),
                ),
                &[],
                "",
            )
            .await
            .map_err(|e| unreachable(&g.endpoint, e))?;
        if r.status != 200 {
            return Err(server_error("reading logs", &r));
        }
        let v: Value = r.json()?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            println!("{}", e["message"].as_str().unwrap_or(""));
        }
        after = v["nextToken"].as_i64().unwrap_or(after);
        if let Some(c) = v["cursor"].as_str() {
            cursor = Some(c.to_string());
        }
        if events.len() >= 10_000 {
            continue;
        }
        if !args.tail {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(args.interval.max(1))) => {}
            _ = crate::shutdown_signal() => return Ok(()),
        }
    }
}
