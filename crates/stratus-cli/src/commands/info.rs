//! `info` (the deployed service), `print` (the resolved serverless.yml) and `metrics`
//! (invocation counts).

use clap::Args;
use serde_json::Value;

use super::{server_error, unreachable};
use crate::client::Api;
use crate::project;
use crate::Global;

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

/// `stratus print` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct PrintArgs {
    /// yaml (default) or json.
    #[arg(long, default_value = "yaml")]
    format: String,
}

/// `stratus metrics` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct MetricsArgs {
    /// Only this function.
    #[arg(long, short = 'f')]
    function: Option<String>,
    /// No effect on Stratus (metrics count from the server's start).
    #[arg(long = "startTime")]
    start_time: Option<String>,
    /// No effect on Stratus (metrics count up to now).
    #[arg(long = "endTime")]
    end_time: Option<String>,
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
    println!("functions:");
    for f in v["functions"].as_array().into_iter().flatten() {
        println!(
            "  {}: {}",
            f["key"].as_str().unwrap_or(""),
            f["name"].as_str().unwrap_or("")
        );
        let mut details = vec![format!(
            "{} {} MB {} s",
            f["runtime"].as_str().unwrap_or(""),
            f["memorySize"],
            f["timeout"]
        )];
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
    let p = project::load(g)?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&p.service)?),
        "yaml" | "yml" => print!("{}", to_yaml(&serde_json::to_value(&p.service)?)),
        other => anyhow::bail!("--format {other}: use yaml or json"),
    }
    Ok(())
}

pub(crate) async fn metrics(g: &Global, args: MetricsArgs) -> anyhow::Result<()> {
    if args.start_time.is_some() {
        crate::ui::no_effect("startTime", "metrics count from the server's start");
    }
    if args.end_time.is_some() {
        crate::ui::no_effect("endTime", "metrics count up to now");
    }
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    println!(
        "{:<24} {:>11} {:>8} {:>10} {:>12}",
        "function", "invocations", "errors", "throttles", "avg duration"
    );
    for (key, f) in &p.service.functions {
        if args.function.as_ref().is_some_and(|only| only != key) {
            continue;
        }
        let r = api
            .call(
                "GET",
                &format!("/stratus/v1/metrics?function={}", f.name),
                &[],
                "",
            )
            .await
            .map_err(|e| unreachable(&g.endpoint, e))?;
        if r.status != 200 {
            return Err(server_error("reading metrics", &r));
        }
        let m: Value = r.json()?;
        let n = m["invocations"].as_u64().unwrap_or(0);
        let avg = if n > 0 {
            m["durationMsTotal"].as_f64().unwrap_or(0.0) / n as f64
        } else {
            0.0
        };
        let errors = m["errors"].as_u64().unwrap_or(0);
        let throttles = m["throttles"].as_u64().unwrap_or(0);
        println!("{key:<24} {n:>11} {errors:>8} {throttles:>10} {avg:>9.2} ms");
    }
    Ok(())
}

/// Renders JSON data as block-style YAML. Strings are written as JSON strings,
/// which are valid double-quoted YAML scalars, so no value can be misread.
fn to_yaml(v: &Value) -> String {
    fn key(k: &str) -> String {
        let plain = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            && !k.starts_with(['-', '.']);
        if plain {
            k.to_string()
        } else {
            Value::String(k.to_string()).to_string()
        }
    }
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::Object(m) if m.is_empty() => Some("{}".into()),
            Value::Array(a) if a.is_empty() => Some("[]".into()),
            Value::Object(_) | Value::Array(_) => None,
            other => Some(other.to_string()),
        }
    }
    fn walk(v: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    match scalar(val) {
                        Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                        None => {
                            out.push_str(&format!("{pad}{}:\n", key(k)));
                            walk(val, indent + 2, out);
                        }
                    }
                }
            }
            Value::Array(a) => {
                for item in a {
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
            other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
        }
    }
    let mut out = String::new();
    walk(v, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_follow_the_serverless_framework() {
        assert_eq!(logical_id("hello"), "Hello");
        assert_eq!(logical_id("my-func_2"), "MyDashfuncUnderscore2");
    }

    #[test]
    fn yaml_rendering_quotes_what_needs_it() {
        let v = serde_json::json!({"service": "svc", "n": 3, "b": true, "list": ["a: b", {"x": 1, "y": [1]}], "empty": {}, "weird key": "yes"});
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "b: true\nempty: {}\nlist:\n  - \"a: b\"\n  - x: 1\n    y:\n      - 1\nn: 3\nservice: \"svc\"\n\"weird key\": \"yes\"\n"
        );
    }
}
