//! `stratus cluster status`: the nodes of the cluster the endpoint belongs to —
//! address, health, environments, load and last heartbeat — and which node leads
//! (fires the schedules), as a table, or the server's JSON with `--json`
//! (`GET /stratus/v1/cluster`).
//!
//! `stratus cluster forget NODE_ID`: deletes a retired (stopped or dead) node's
//! row (`DELETE /stratus/v1/cluster/nodes/{id}`); a healthy node is refused.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{server_error, unreachable};
use crate::client::Api;
use crate::Global;

/// `stratus cluster` options.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    what: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// List the nodes: address, health, environments, load, last heartbeat.
    Status {
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget a retired node: delete the row of a stopped or dead node (a
    /// healthy node is refused). A node that starts again rejoins by itself.
    Forget {
        /// The node's id, as `stratus cluster status` lists it.
        node: String,
    },
}

pub(crate) async fn run(g: &Global, args: ClusterArgs) -> anyhow::Result<()> {
    let json = match args.what {
        ClusterCommand::Status { json } => json,
        ClusterCommand::Forget { node } => return forget(g, &node).await,
    };
    let api = Api::new(&g.endpoint);
    let r = api
        .call("GET", "/stratus/v1/cluster", &[], "")
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status != 200 {
        return Err(server_error("reading the cluster status", &r));
    }
    let v = r.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", table(&v));
    }
    Ok(())
}

async fn forget(g: &Global, node: &str) -> anyhow::Result<()> {
    let api = Api::new(&g.endpoint);
    let path = format!(
        "/stratus/v1/cluster/nodes/{}",
        percent_encoding::utf8_percent_encode(node, percent_encoding::NON_ALPHANUMERIC)
    );
    let r = api
        .call("DELETE", &path, &[], "")
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status != 200 {
        return Err(server_error(&format!("forgetting node {node}"), &r));
    }
    let v = r.json()?;
    println!(
        "forgot node {node} ({})",
        v["health"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// `1.2s ago`, `3m ago`.
fn age(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1}s ago", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m ago", ms / 60_000)
    } else {
        format!("{}h ago", ms / 3_600_000)
    }
}

/// The status as a table, this node marked with `*`.
fn table(v: &Value) -> String {
    let header = [
        "NODE",
        "ADDRESS",
        "HEALTH",
        "ENVIRONMENTS",
        "IN-FLIGHT",
        "PROVISIONED",
        "LOAD",
        "LAST HEARTBEAT",
    ];
    let mut rows: Vec<[String; 8]> = vec![header.map(String::from)];
    for n in v["nodes"].as_array().into_iter().flatten() {
        let me = if n["self"] == true { " *" } else { "" };
        rows.push([
            format!("{}{me}", n["id"].as_str().unwrap_or("?")),
            n["address"].as_str().unwrap_or("?").to_string(),
            n["health"].as_str().unwrap_or("?").to_string(),
            n["environments"].as_u64().unwrap_or(0).to_string(),
            n["inFlight"].as_u64().unwrap_or(0).to_string(),
            n["provisioned"].as_u64().unwrap_or(0).to_string(),
            format!("{:.2}", n["load"].as_f64().unwrap_or(0.0)),
            age(n["heartbeatAgeMs"].as_i64().unwrap_or(0)),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = format!(
        "mode: {} ({} node{}; * is the node answering)\n",
        v["mode"].as_str().unwrap_or("?"),
        rows.len() - 1,
        if rows.len() == 2 { "" } else { "s" }
    );
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    // The leader fires the cluster's schedules; a server without leadership
    // (older) prints no line.
    match v.get("leader") {
        None => {}
        Some(Value::Null) => out.push_str("leader: none (an election is under way)\n"),
        Some(l) => {
            out.push_str(&format!("leader: {}", l["node"].as_str().unwrap_or("?")));
            if let (Some(epoch), Some(since)) = (l["epoch"].as_i64(), l["since"].as_str()) {
                out.push_str(&format!(" (epoch {epoch}, since {since})"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_node() {
        let v = serde_json::json!({
            "mode": "cluster",
            "nodes": [
                {"id": "a", "address": "127.0.0.1:1", "health": "healthy", "self": true,
                 "environments": 2, "inFlight": 1, "load": 0.5, "heartbeatAgeMs": 400},
                {"id": "b", "address": "127.0.0.1:2", "health": "dead", "self": false,
                 "environments": 0, "inFlight": 0, "load": 0.0, "heartbeatAgeMs": 125000},
            ]
        });
        let t = table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("mode: cluster (2 nodes"), "{t}");
        assert!(
            lines[1].starts_with("NODE")
                && lines[1].contains("PROVISIONED")
                && lines[1].contains("LAST HEARTBEAT"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("a *")
                && lines[2].contains("healthy")
                && lines[2].contains("0.4s ago"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("b ") && lines[3].contains("dead") && lines[3].contains("2m ago"),
            "{t}"
        );
        let mut v = v;
        v["leader"] =
            serde_json::json!({"node": "b", "epoch": 4, "since": "2026-12-04T16:00:00.000Z"});
        let t = table(&v);
        assert_eq!(
            t.lines().last(),
            Some("leader: b (epoch 4, since 2026-12-04T16:00:00.000Z)"),
            "{t}"
        );
        v["leader"] = Value::Null;
        assert!(table(&v).ends_with("leader: none (an election is under way)\n"));
    }
}
