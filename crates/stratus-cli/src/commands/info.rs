//! `info` (the deployed service), `print` (serverless.yml as `serverless print`
//! shows it, or with `--model` the resolved model) and `metrics` (invocation
//! counts).

use clap::Args;
use serde_json::Value;
use stratus_manifest::spanned::{Node, Value as NodeValue};

use anyhow::{anyhow, Context};

use super::{server_error, unreachable};
use crate::client::Api;
use crate::Global;
use crate::{project, ui};

/// `stratus info` options (`--verbose` adds each function's handler, code, ARN and
/// the service's outputs).
#[derive(Debug, Clone, Args)]
pub(crate) struct InfoArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No effect on Stratus (it prints no secrets).
    #[arg(long)]
    conceal: bool,
}

/// `stratus print` options (those of `serverless print`, plus `--model`).
#[derive(Debug, Clone, Args)]
pub(crate) struct PrintArgs {
    /// yaml (default), json or text.
    #[arg(long, default_value = "yaml")]
    format: String,
    /// Print only the value at this dotted path (e.g. `provider.environment`).
    #[arg(long)]
    path: Option<String>,
    /// `keys`: print the keys of the value instead.
    #[arg(long)]
    transform: Option<String>,
    /// Print Stratus's resolved model of the service (every default filled)
    /// instead of the configuration (yaml or json).
    #[arg(long, conflicts_with_all = ["path", "transform"])]
    model: bool,
}

/// `stratus metrics` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct MetricsArgs {
    /// Only this function (its key in serverless.yml).
    #[arg(long, short = 'f')]
    function: Option<String>,
    /// Start: an ISO 8601 time, or a span ago such as `30m`, `2h`, `3d` (default: 24h ago).
    #[arg(long = "startTime")]
    start_time: Option<String>,
    /// End: an ISO 8601 time (default: now).
    #[arg(long = "endTime")]
    end_time: Option<String>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// The server's sandbox driver as `/stratus/v1/health` reports it, in words.
async fn sandbox_line(api: &Api) -> Option<String> {
    let r = api.call("GET", "/stratus/v1/health", &[], "").await.ok()?;
    let v: Value = r.json().ok()?;
    let s = &v["sandbox"];
    let driver = s["driver"].as_str()?;
    Some(if s["isolated"].as_bool() == Some(true) {
        let pinned = match s["pinnedEnvironments"].as_u64() {
            Some(n) if n > 0 => format!(", {n} busy environment(s) pinned"),
            _ => String::new(),
        };
        format!(
            "{driver} (isolated: namespaces, cgroup {}, seccomp {}, egress {}{pinned})",
            s["cgroup"].as_str().unwrap_or("?"),
            if s["seccomp"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
            s["egress"].as_str().unwrap_or("?"),
        )
    } else {
        format!("{driver} (NOT isolated: functions run as plain processes on the host)")
    })
}

pub(crate) async fn info(g: &Global, args: InfoArgs) -> anyhow::Result<()> {
    if args.conceal {
        crate::ui::no_effect("conceal", "it prints no secrets");
    }
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    let r = api
        .call("GET", &p.api_path(), &[], "")
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status == 404 {
        anyhow::bail!(
            "{} stage {} is not deployed at {} (run `stratus deploy`)",
            p.service.service,
            p.service.stage,
            g.endpoint
        );
    }
    if r.status != 200 {
        return Err(server_error("reading the service", &r));
    }
    let v: Value = r.json()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("service: {}", p.service.service);
    println!("stage: {}", p.service.stage);
    println!("region: {}", p.service.region);
    println!("endpoint: {}", g.endpoint);
    if let Some(line) = sandbox_line(&api).await {
        println!("sandbox: {line}");
    }
    // Runtime IDs the server runs on another version (`--runtime-fallback nearest`).
    let runtimes = match api.call("GET", "/stratus/v1/health", &[], "").await {
        Ok(r) => r.json().ok().map(|h: Value| h["runtimes"].clone()),
        Err(_) => None,
    }
    .unwrap_or(Value::Null);
    println!("functions:");
    for f in v["functions"].as_array().into_iter().flatten() {
        println!(
            "  {}: {}",
            f["key"].as_str().unwrap_or(""),
            f["name"].as_str().unwrap_or("")
        );
        let rt = f["runtime"].as_str().unwrap_or("");
        if runtimes[rt]["exact"] == false && runtimes[rt]["version"].is_null() {
            // An alias (`go1.x`): the same code runs as another ID.
            println!(
                "    warning: {rt} is no longer supported by AWS Lambda; it runs as {}",
                runtimes[rt]["runsAs"].as_str().unwrap_or("?")
            );
        } else if runtimes[rt]["exact"] == false {
            println!(
                "    warning: {rt} runs on version {} ({}){}: not its own version (the server's --runtime-fallback / --legacy-runtimes nearest)",
                runtimes[rt]["version"].as_str().unwrap_or("?"),
                runtimes[rt]["path"].as_str().unwrap_or("?"),
                runtimes[rt]["runsAs"]
                    .as_str()
                    .map(|to| format!(" as {to}"))
                    .unwrap_or_default()
            );
        }
        let mut details = vec![format!(
            "{} {} MB {} s",
            f["runtime"].as_str().unwrap_or(""),
            f["memorySize"],
            f["timeout"]
        )];
        if let Some(mb) = f["ephemeralStorage"].as_u64().filter(|mb| *mb != 512) {
            details.push(format!("/tmp {mb} MB"));
        }
        if let Some(n) = f["network"].as_str() {
            details.push(format!("network {n}"));
        }
        if let Some(v) = f["version"].as_str() {
            details.push(format!("version {v}"));
        }
        for (alias, version) in f["aliases"].as_object().into_iter().flatten() {
            details.push(format!(
                "alias {alias} -> {}",
                version.as_str().unwrap_or("")
            ));
        }
        if let Some(r) = f["reservedConcurrency"].as_u64() {
            details.push(format!("reserved {r}"));
        }
        for (q, pc) in f["provisionedConcurrency"]
            .as_object()
            .into_iter()
            .flatten()
        {
            details.push(format!(
                "provisioned {}/{} on {q} ({})",
                pc["available"],
                pc["requested"],
                pc["status"].as_str().unwrap_or("")
            ));
        }
        println!("    {}", details.join(", "));
        for ep in f["endpoints"].as_array().into_iter().flatten() {
            println!(
                "    {} - {}",
                ep["method"].as_str().unwrap_or(""),
                ep["url"].as_str().unwrap_or("")
            );
        }
        for sch in f["schedules"].as_array().into_iter().flatten() {
            println!(
                "    schedule {}: next {}",
                sch["expression"].as_str().unwrap_or(""),
                sch["next"].as_str().unwrap_or("never")
            );
        }
        for line in autoscaling_lines(&api, f["name"].as_str().unwrap_or("")).await {
            println!("    {line}");
        }
        if g.verbose {
            println!("    handler: {}", f["handler"].as_str().unwrap_or(""));
            println!(
                "    code sha256: {}",
                f["codeSha256"].as_str().unwrap_or("")
            );
            println!(
                "    last modified: {}",
                f["lastModified"].as_str().unwrap_or("")
            );
        }
    }
    if g.verbose {
        verbose_outputs(&api, g, &v).await?;
    }
    Ok(())
}

/// Activities `stratus info` shows per function.
const INFO_ACTIVITIES: usize = 3;

/// The "autoscaling" block of a function (from `/stratus/v1/autoscaling`): each
/// scalable target's range, capacity and target, its scheduled actions, and the
/// last few scaling activities. Empty when the function has none (or the server
/// predates autoscaling).
async fn autoscaling_lines(api: &Api, function: &str) -> Vec<String> {
    let path = format!("/stratus/v1/autoscaling?function={function}");
    let Some(v) = api
        .call("GET", &path, &[], "")
        .await
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| r.json().ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in v["targets"].as_array().into_iter().flatten() {
        let target = match t["targetValue"].as_f64() {
            Some(tv) => format!(", target utilization {tv}"),
            None => String::new(),
        };
        out.push(format!(
            "autoscaling {}: min {}, max {}, current {}{target}",
            t["resourceId"].as_str().unwrap_or(""),
            t["min"],
            t["max"],
            t["current"]
        ));
        for a in t["scheduledActions"].as_array().into_iter().flatten() {
            let bound = |k: &str| match a[k].as_u64() {
                Some(n) => format!(" {k} {n}"),
                None => String::new(),
            };
            out.push(format!(
                "  scheduled {}: {} ({}) ->{}{}",
                a["name"].as_str().unwrap_or(""),
                a["schedule"].as_str().unwrap_or(""),
                a["timezone"].as_str().unwrap_or("UTC"),
                bound("min"),
                bound("max")
            ));
        }
    }
    for a in v["activities"]
        .as_array()
        .into_iter()
        .flatten()
        .take(INFO_ACTIVITIES)
    {
        let metric = match a["metricValue"].as_f64() {
            Some(m) => format!(", utilization {m:.2}"),
            None => String::new(),
        };
        out.push(format!(
            "  {} {} {} -> {}{metric} [{}]: {}",
            a["time"].as_str().unwrap_or(""),
            a["description"].as_str().unwrap_or(""),
            a["from"],
            a["to"],
            a["status"].as_str().unwrap_or(""),
            a["cause"].as_str().unwrap_or("")
        ));
    }
    out
}

/// `info --verbose`'s outputs, named as the Serverless Framework's stack outputs:
/// each function's qualified ARN (its published version), then the endpoint and the
/// number of recorded deployments.
async fn verbose_outputs(api: &Api, g: &Global, info: &Value) -> anyhow::Result<()> {
    println!("outputs:");
    for f in info["functions"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("");
        let r = api
            .call("GET", &format!("/2015-03-31/functions/{name}"), &[], "")
            .await
            .map_err(|e| unreachable(&g.endpoint, e))?;
        if r.status != 200 {
            return Err(server_error(&format!("reading function {name}"), &r));
        }
        let arn = r.json()?["Configuration"]["FunctionArn"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let qualified = match f["version"].as_str() {
            Some(v) => format!("{arn}:{v}"),
            None => arn,
        };
        println!(
            "  {}LambdaFunctionQualifiedArn: {qualified}",
            logical_id(f["key"].as_str().unwrap_or(name))
        );
    }
    println!("  ServiceEndpoint: {}", g.endpoint);
    println!("deployments: {}", info["deployments"]);
    Ok(())
}

/// A function key as the Serverless Framework spells it in logical ids: first letter
/// upper case, `-` as `Dash`, `_` as `Underscore`.
fn logical_id(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        match c {
            '-' => out.push_str("Dash"),
            '_' => out.push_str("Underscore"),
            c if i == 0 => out.extend(c.to_uppercase()),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn print(g: &Global, args: PrintArgs) -> anyhow::Result<()> {
    if args.model {
        let p = project::load(g)?;
        match args.format.as_str() {
            "json" => println!("{}", serde_json::to_string_pretty(&p.service)?),
            "yaml" | "yml" => print!("{}", model_yaml(&p.service)?),
            other => anyhow::bail!("--format {other}: use yaml or json"),
        }
        return Ok(());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (target, options) = project::target_and_options(g, &cwd)?;
    let printed = stratus_manifest::load_printed(&target, &options).map_err(|e| anyhow!("{e}"))?;
    for w in &printed.warnings {
        if w.severity == stratus_manifest::Severity::Warning {
            ui::warn(&w.to_string());
        }
    }
    let conf = stratus_manifest::printed::select(
        &printed.config,
        args.path.as_deref(),
        args.transform.as_deref(),
    )?;
    let out = match args.format.as_str() {
        "text" => printed_text(&conf)?,
        "json" => printed_json(&conf),
        "yaml" => printed_yaml(&conf),
        _ => anyhow::bail!("Format must be \"yaml\", \"json\" or \"text\""),
    };
    println!("{}", out.trim_end_matches('\n'));
    Ok(())
}

/// `--startTime`/`--endTime` as `serverless metrics` reads them: `(\d+)(m|h|d)`
/// is that long before now, anything else an ISO 8601 time.
fn metrics_time(
    raw: &str,
    now: time::OffsetDateTime,
    flag: &str,
) -> anyhow::Result<time::OffsetDateTime> {
    let digits: String = raw.chars().take_while(char::is_ascii_digit).collect();
    let unit = &raw[digits.len()..];
    if let (Ok(n), Some(secs)) = (
        digits.parse::<i64>(),
        match unit {
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86400),
            _ => None,
        },
    ) {
        return Ok(now - time::Duration::seconds(n * secs));
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .or_else(|_| {
            time::Date::parse(raw, time::macros::format_description!("[year]-[month]-[day]"))
                .map(|d| d.midnight().assume_utc())
        })
        .map_err(|_| {
            anyhow!("--{flag} {raw:?} is neither a time such as 2026-12-03T10:00:00Z (or 2026-12-03) nor a span such as 30m, 2h, 3d")
        })
}

/// `December 3, 2026 2:05 PM`, dayjs's `LLL` (in UTC).
fn lll(t: time::OffsetDateTime) -> String {
    let months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let (h, ampm) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{} {}, {} {}:{:02} {ampm}",
        months[t.month() as usize - 1],
        t.day(),
        t.year(),
        h,
        t.minute()
    )
}

pub(crate) async fn metrics(g: &Global, args: MetricsArgs) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let start = match &args.start_time {
        Some(raw) => metrics_time(raw, now, "startTime")?,
        None => now - time::Duration::days(1),
    };
    let end = match &args.end_time {
        Some(raw) => metrics_time(raw, now, "endTime")?,
        None => now,
    };
    if start > end {
        return Err(anyhow!("--startTime must be before --endTime"));
    }
    let p = project::load(g)?;
    if let Some(only) = &args.function {
        if !p.service.functions.contains_key(only) {
            return Err(anyhow!("function {only:?} is not in this service"));
        }
    }
    let api = Api::new(&g.endpoint);
    // serverless metrics asks for hourly data points, daily past 24 hours.
    let period = if end - start > time::Duration::days(1) {
        86400
    } else {
        3600
    };
    let (mut invocations, mut throttles, mut errors, mut duration_total) = (0.0, 0.0, 0.0, 0.0);
    for (key, f) in &p.service.functions {
        if args.function.as_ref().is_some_and(|only| only != key) {
            continue;
        }
        let path = format!(
            "/stratus/v1/metrics/series?function={}&start={}&end={}&period={period}",
            f.name,
            start.unix_timestamp(),
            end.unix_timestamp()
        );
        let r = api
            .call("GET", &path, &[], "")
            .await
            .map_err(|e| unreachable(&g.endpoint, e))?;
        if r.status != 200 {
            return Err(server_error("reading metrics", &r));
        }
        let v: Value = r.json()?;
        for point in v["points"].as_array().into_iter().flatten() {
            let n = point["Invocations"].as_f64().unwrap_or(0.0);
            invocations += n;
            throttles += point["Throttles"].as_f64().unwrap_or(0.0);
            errors += point["Errors"].as_f64().unwrap_or(0.0);
            duration_total += point["DurationAvg"].as_f64().unwrap_or(0.0) * n;
        }
    }
    let average = if invocations > 0.0 {
        duration_total / invocations
    } else {
        0.0
    };
    let average = (average * 100.0).round() / 100.0;
    if args.json {
        let out = serde_json::json!({
            "function": args.function,
            "startTime": start.format(&time::format_description::well_known::Rfc3339)?,
            "endTime": end.format(&time::format_description::well_known::Rfc3339)?,
            "invocations": invocations as u64,
            "throttles": throttles as u64,
            "errors": errors as u64,
            "durationAverage": average,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{}",
        args.function.as_deref().unwrap_or("Service wide metrics")
    );
    println!("{} - {}\n", lll(start), lll(end));
    println!("invocations: {}", invocations as u64);
    println!("throttles: {}", throttles as u64);
    println!("errors: {}", errors as u64);
    println!("duration (avg.): {average}ms");
    Ok(())
}

/// A printed value as `JSON.stringify(value, null, '  ')` writes it (v3's
/// `--format json`), keys in order. Numbers JSON cannot hold become `null`.
fn printed_json(n: &Node) -> String {
    fn walk(n: &Node, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent + 1);
        let close = "  ".repeat(indent);
        match &n.value {
            NodeValue::Map(entries) if entries.is_empty() => out.push_str("{}"),
            NodeValue::Seq(items) if items.is_empty() => out.push_str("[]"),
            NodeValue::Map(entries) => {
                out.push_str("{\n");
                for (i, e) in entries.iter().enumerate() {
                    out.push_str(&pad);
                    out.push_str(&Value::String(e.key.clone()).to_string());
                    out.push_str(": ");
                    walk(&e.value, indent + 1, out);
                    out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push('}');
            }
            NodeValue::Seq(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad);
                    walk(item, indent + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push(']');
            }
            _ => out.push_str(&printed_scalar_json(n)),
        }
    }
    let mut out = String::new();
    walk(n, 0, &mut out);
    out
}

fn printed_scalar_json(n: &Node) -> String {
    match &n.value {
        NodeValue::Null => "null".into(),
        NodeValue::Bool(b) => b.to_string(),
        // JavaScript numbers are doubles: past 2^53 they print rounded.
        NodeValue::Int(i) if i.unsigned_abs() > 1 << 53 => {
            stratus_manifest::printed::js_number(*i as f64)
        }
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(f) if f.is_finite() => stratus_manifest::printed::js_number(*f),
        NodeValue::Float(_) => "null".into(),
        NodeValue::String(s) => Value::String(s.clone()).to_string(),
        NodeValue::Map(_) | NodeValue::Seq(_) => String::new(),
    }
}

/// A printed value as block-style YAML, keys in order (v3's `--format
/// yaml`; the same data, not necessarily the same quoting). Strings that could
/// be read as anything else are written as JSON strings (valid double-quoted
/// YAML).
fn printed_yaml(n: &Node) -> String {
    fn text(s: &str) -> String {
        let reserved = matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
        let mut chars = s.chars();
        let plain = !reserved
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '/'))
            && chars.all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        '_' | '-' | '.' | '/' | '(' | ')' | '=' | '+' | '@' | '$' | ' '
                    )
            })
            && !s.ends_with(' ');
        if plain {
            s.to_string()
        } else {
            Value::String(s.to_string()).to_string()
        }
    }
    fn scalar(n: &Node) -> Option<String> {
        match &n.value {
            NodeValue::Map(m) if m.is_empty() => Some("{}".into()),
            NodeValue::Seq(a) if a.is_empty() => Some("[]".into()),
            NodeValue::Map(_) | NodeValue::Seq(_) => None,
            NodeValue::String(s) => Some(text(s)),
            _ => Some(printed_scalar_json(n)),
        }
    }
    fn walk(n: &Node, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match &n.value {
            NodeValue::Map(entries) if !entries.is_empty() => {
                for e in entries {
                    match scalar(&e.value) {
                        Some(s) => out.push_str(&format!("{pad}{}: {s}\n", text(&e.key))),
                        None => {
                            out.push_str(&format!("{pad}{}:\n", text(&e.key)));
                            walk(&e.value, indent + 2, out);
                        }
                    }
                }
            }
            NodeValue::Seq(items) if !items.is_empty() => {
                for item in items {
                    match scalar(item) {
                        Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                        None => {
                            let mut inner = String::new();
                            walk(item, indent + 2, &mut inner);
                            out.push_str(&format!("{pad}- {}", inner.trim_start()));
                        }
                    }
                }
            }
            _ => out.push_str(&format!("{pad}{}\n", scalar(n).unwrap_or_default())),
        }
    }
    let mut out = String::new();
    walk(n, 0, &mut out);
    out
}

/// `--format text`: a list one item per line, a scalar as it reads; v3 refuses
/// maps.
fn printed_text(n: &Node) -> anyhow::Result<String> {
    fn js(n: &Node) -> String {
        match &n.value {
            NodeValue::Null => String::new(),
            NodeValue::Map(_) => "[object Object]".into(),
            NodeValue::Seq(items) => items.iter().map(js).collect::<Vec<_>>().join(","),
            // `String(NaN)` is `NaN` (JSON has only null for it).
            NodeValue::Float(f) => stratus_manifest::printed::js_number(*f),
            NodeValue::Int(_) => printed_scalar_json(n),
            _ => n.scalar_text().unwrap_or_default(),
        }
    }
    match &n.value {
        NodeValue::Seq(items) => Ok(items.iter().map(js).collect::<Vec<_>>().join("\n")),
        NodeValue::Map(_) => anyhow::bail!("Cannot print an object as \"text\""),
        NodeValue::Null => Ok("null".into()),
        _ => Ok(js(n)),
    }
}

/// The resolved model as YAML, through the same emitter as `print` (the model's
/// JSON read back as a tree, keys in the model's order).
fn model_yaml(model: &impl serde::Serialize) -> anyhow::Result<String> {
    let json = serde_json::to_string(model)?;
    let tree = stratus_manifest::spanned::parse_json(&json, "model".into())
        .map_err(|e| anyhow!("cannot render the model: {e}"))?;
    Ok(printed_yaml(&tree))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_manifest::spanned::{parse_json, parse_yaml};

    fn same(a: &Node, b: &Node) -> bool {
        match (&a.value, &b.value) {
            (NodeValue::Map(x), NodeValue::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|(e, f)| e.key == f.key && same(&e.value, &f.value))
            }
            (NodeValue::Seq(x), NodeValue::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(e, f)| same(e, f))
            }
            (x, y) => x == y,
        }
    }

    const TRICKY: &str = r##"{"z": 1, "a": {"yes": "yes", "num": "1", "colon": "a: b", "empty": "",
        "dash": "-x", "hash": "#c", "lead": " x", "lines": "a\nb", "tilde": "~", "null": null,
        "f": 1.5, "t": true, "list": [[1, 2], {"k": []}, {}], "quote": "it's \"q\"",
        "unicode": "ü", "star": "*", "amp": "&a", "bang": "!Ref x", "pct": "%x"}}"##;

    #[test]
    fn printed_yaml_reads_back_as_the_same_tree_in_order() {
        let n = parse_json(TRICKY, "t.json".into()).unwrap();
        let yaml = printed_yaml(&n);
        let back = parse_yaml(&yaml, "t.yml".into()).unwrap();
        assert!(same(&n, &back), "{yaml}");
        assert!(yaml.starts_with("z: 1\na:\n  \"yes\": \"yes\"\n"), "{yaml}");
    }

    #[test]
    fn printed_json_is_laid_out_like_json_stringify() {
        let n = parse_json(
            r#"{"b": 1.0, "a": [1, {"x": "y"}], "e": {}, "l": [], "n": null}"#,
            "t.json".into(),
        )
        .unwrap();
        assert_eq!(
            printed_json(&n),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"x\": \"y\"\n    }\n  ],\n  \"e\": {},\n  \"l\": [],\n  \"n\": null\n}"
        );
        let tricky = parse_json(TRICKY, "t.json".into()).unwrap();
        let back = parse_json(&printed_json(&tricky), "t.json".into()).unwrap();
        assert!(same(&tricky, &back));
    }

    #[test]
    fn printed_text_joins_lists_and_refuses_maps() {
        let n = parse_json(r#"["a", 1.5, null, [1, 2], {"x": 1}]"#, "t.json".into()).unwrap();
        assert_eq!(printed_text(&n).unwrap(), "a\n1.5\n\n1,2\n[object Object]");
        let m = parse_json(r#"{"x": 1}"#, "t.json".into()).unwrap();
        assert_eq!(
            printed_text(&m).unwrap_err().to_string(),
            "Cannot print an object as \"text\""
        );
        let s = parse_json(r#"3"#, "t.json".into()).unwrap();
        assert_eq!(printed_text(&s).unwrap(), "3");
    }

    #[test]
    fn logical_ids_follow_the_serverless_framework() {
        assert_eq!(logical_id("hello"), "Hello");
        assert_eq!(logical_id("my-func_2"), "MyDashfuncUnderscore2");
    }

    #[test]
    fn model_yaml_quotes_what_needs_it() {
        let v = serde_json::json!({"service": "svc", "n": 3, "b": true, "list": ["a: b", {"x": 1, "y": [1]}], "empty": {}, "weird key": "yes"});
        let y = model_yaml(&v).unwrap();
        assert_eq!(
            y,
            // `y` and `n` are YAML 1.1 booleans, so they are quoted as keys too.
            "b: true\nempty: {}\nlist:\n  - \"a: b\"\n  - x: 1\n    \"y\":\n      - 1\n\"n\": 3\nservice: svc\nweird key: \"yes\"\n"
        );
    }
}
