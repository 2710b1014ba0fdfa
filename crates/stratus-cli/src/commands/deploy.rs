//! `package`, `deploy` (`deploy function -f`, `deploy list`), `rollback -t`, `remove`.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{server_error, unreachable};
use crate::client::Api;
use crate::pack::{self, Packages};
use crate::project::{self, Project};
use crate::ui::Progress;
use crate::Global;

/// `stratus package` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct PackageArgs {}

/// `stratus deploy` options.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct DeployArgs {
    #[command(subcommand)]
    what: Option<DeployWhat>,
}

#[derive(Debug, Clone, Subcommand)]
enum DeployWhat {
    /// Update one function's code and configuration (its provisioned alias included).
    Function {
        /// The function (its key under `functions:`).
        #[arg(long, short = 'f')]
        function: String,
    },
    /// List the deployments of this service stage.
    List,
}

/// `stratus rollback` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct RollbackArgs {
    /// Timestamp of the deployment to roll back to (see `stratus deploy list`).
    #[arg(long, short = 't')]
    timestamp: i64,
}

pub(crate) async fn package(g: &Global, _args: PackageArgs) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let progress = Progress::new(g.verbose, "Packaging");
    let packages = pack::package(&p, None, &|s| progress.step(s))?;
    progress.finish();
    let mut seen = std::collections::BTreeSet::new();
    for a in packages.by_function.values() {
        if seen.insert(&a.path) {
            println!(
                "{}  {}  ({} bytes)",
                a.sha256,
                a.path.display(),
                a.bytes.len()
            );
        }
    }
    Ok(())
}

/// Uploads the packages the server does not have yet.
async fn upload(
    api: &Api,
    g: &Global,
    packages: &Packages,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut done = std::collections::BTreeSet::new();
    for a in packages.by_function.values() {
        if !done.insert(a.sha256.clone()) {
            continue;
        }
        let path = format!("/stratus/v1/blobs/{}", a.sha256);
        let head = api
            .call("HEAD", &path, &[], "")
            .await
            .map_err(|e| unreachable(&g.endpoint, e))?;
        if head.status == 200 {
            progress.step(&format!("{} already uploaded", a.path.display()));
            continue;
        }
        progress.step(&format!(
            "uploading {} ({} bytes)",
            a.path.display(),
            a.bytes.len()
        ));
        let r = api.call("PUT", &path, &[], a.bytes.clone()).await?;
        if r.status != 201 {
            return Err(server_error("uploading the package", &r));
        }
    }
    Ok(())
}

/// Queues declared in `resources` (`Type: AWS::SQS::Queue`): the definitions the
/// server creates, and each logical id's ARN for `Fn::GetAtt`/`Ref`.
#[allow(clippy::type_complexity)]
fn queue_resources(
    p: &Project,
) -> anyhow::Result<(Vec<Value>, std::collections::BTreeMap<String, String>)> {
    let mut arns = std::collections::BTreeMap::new();
    let resources = p.service.resources["Resources"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let name_of = |id: &str, r: &Value| {
        r["Properties"]["QueueName"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}-{id}", p.service.service, p.service.stage))
    };
    for (id, r) in &resources {
        if r["Type"] == "AWS::SQS::Queue" {
            arns.insert(
                id.clone(),
                format!(
                    "arn:aws:sqs:{}:000000000000:{}",
                    p.service.region,
                    name_of(id, r)
                ),
            );
        }
    }
    let mut queues = Vec::new();
    for (id, r) in &resources {
        if r["Type"] != "AWS::SQS::Queue" {
            continue;
        }
        let mut attrs = serde_json::Map::new();
        for (k, v) in r["Properties"].as_object().into_iter().flatten() {
            let value = match (k.as_str(), v) {
                ("QueueName", _) | ("Tags", _) => continue,
                ("RedrivePolicy", Value::Object(o)) => {
                    let mut o = o.clone();
                    if let Some(target) = o.get("deadLetterTargetArn").cloned() {
                        let arn = resolve_ref(&target, &arns).with_context(|| {
                            format!("resources.Resources.{id}.Properties.RedrivePolicy.deadLetterTargetArn")
                        })?;
                        o.insert("deadLetterTargetArn".into(), Value::String(arn));
                    }
                    Value::Object(o).to_string()
                }
                (_, Value::String(s)) => s.clone(),
                (_, other) => other.to_string(),
            };
            attrs.insert(k.clone(), Value::String(value));
        }
        queues.push(json!({ "name": name_of(id, r), "attributes": attrs }));
    }
    Ok((queues, arns))
}

/// An ARN written as a string, `{"Fn::GetAtt": [Id, "Arn"]}` or `{"Ref": Id}`.
fn resolve_ref(
    v: &Value,
    arns: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<String> {
    if let Some(s) = v.as_str() {
        return Ok(s.to_string());
    }
    let id = v["Fn::GetAtt"][0].as_str().or_else(|| v["Ref"].as_str());
    match id.and_then(|id| arns.get(id)) {
        Some(arn) => Ok(arn.clone()),
        None => bail!("cannot resolve {v}: expected a queue ARN, or Fn::GetAtt/Ref of an AWS::SQS::Queue in resources"),
    }
}

/// Replaces `sqs` events' ARN references with the ARNs of the service's queues.
fn resolve_events(
    mut events: Vec<stratus_manifest::Event>,
    arns: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<stratus_manifest::Event>> {
    for ev in &mut events {
        if let stratus_manifest::Event::Sqs(s) = ev {
            s.arn = Value::String(resolve_ref(&s.arn, arns)?);
        }
    }
    Ok(events)
}

/// The deployment request for `p`'s functions (all, or `only`).
pub(crate) fn request(
    p: &Project,
    packages: &Packages,
    only: Option<&str>,
) -> anyhow::Result<Value> {
    let (queues, arns) = queue_resources(p)?;
    let mut functions = Vec::new();
    for (key, f) in &p.service.functions {
        if only.is_some_and(|o| o != key) {
            continue;
        }
        let a = packages
            .by_function
            .get(key)
            .with_context(|| format!("function {key} was not packaged"))?;
        functions.push(json!({
            "key": key,
            "name": f.name,
            "runtime": f.runtime.as_str(),
            "handler": f.handler,
            "memorySize": f.memory_size,
            "timeout": f.timeout,
            "environment": f.environment,
            "description": f.description.clone().unwrap_or_default(),
            "ephemeralStorage": f.ephemeral_storage_size,
            "architecture": f.architecture.as_str(),
            "codeSha256": a.sha256,
            "provisionedConcurrency": f.provisioned_concurrency.filter(|n| *n > 0),
            "reservedConcurrency": f.reserved_concurrency,
            "maximumRetryAttempts": (f.maximum_retry_attempts != 2).then_some(f.maximum_retry_attempts),
            "maximumEventAge": (f.maximum_event_age != 21_600).then_some(f.maximum_event_age),
            "onSuccess": f.destinations.as_ref().and_then(|d| destination(p, d.on_success.as_ref())),
            "onFailure": f.destinations.as_ref().and_then(|d| destination(p, d.on_failure.as_ref())),
            "deadLetterTarget": f.on_error.as_ref().and_then(|v| v.as_str().map(str::to_string)),
            "events": resolve_events(events_with_url(f), &arns).with_context(|| format!("functions.{key}.events"))?,
        }));
    }
    Ok(json!({
        "queues": queues,
        "functions": functions,
        "partial": only.is_some(),
        "manifest": serde_json::to_value(&p.service)?,
    }))
}

/// The function's events; `url:` travels with them as an `other` event of kind `url`.
fn events_with_url(f: &stratus_manifest::ResolvedFunction) -> Vec<stratus_manifest::Event> {
    let mut events = f.events.clone();
    if let Some(url) = &f.url {
        events.push(stratus_manifest::Event::Other {
            kind: "url".into(),
            config: serde_json::to_value(url).unwrap_or(Value::Bool(true)),
        });
    }
    events
}

/// A destination as the server takes it: a function of this service by its deployed
/// name, or an ARN.
fn destination(p: &Project, d: Option<&stratus_manifest::model::Destination>) -> Option<String> {
    match d? {
        stratus_manifest::model::Destination::Function(key) => Some(
            p.service
                .functions
                .get(key)
                .map(|f| f.name.clone())
                .unwrap_or_else(|| key.clone()),
        ),
        stratus_manifest::model::Destination::Arn(arn) => Some(arn.clone()),
        stratus_manifest::model::Destination::Reference { kind, .. } => {
            crate::ui::warn(&format!("a {kind} destination given as a CloudFormation reference is not supported yet; ignored"));
            None
        }
    }
}

/// Streams a deployment's events, showing progress; returns the final result.
pub(crate) async fn stream(
    api: &Api,
    path: &str,
    body: Value,
    progress: &Progress,
) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    let mut bad_status = None;
    let status = api
        .call_lines("POST", path, body.to_string(), |line| {
            let Ok(ev) = serde_json::from_str::<Value>(line) else {
                bad_status = Some(line.to_string());
                return;
            };
            if ev["type"] == "step" {
                progress.step(&format!(
                    "{}: {}",
                    ev["function"].as_str().unwrap_or(""),
                    ev["message"].as_str().unwrap_or("")
                ));
            }
            last = ev;
        })
        .await?;
    if status != 200 {
        let detail = last["message"]
            .as_str()
            .map(str::to_string)
            .or(bad_status)
            .unwrap_or_else(|| format!("HTTP {status}"));
        bail!("the server refused the deployment: {detail}");
    }
    match last["type"].as_str() {
        Some("done") => Ok(last["result"].clone()),
        Some("error") => bail!(
            "deployment failed at step \"{}\": {}: {}",
            last["step"].as_str().unwrap_or("?"),
            last["errorType"].as_str().unwrap_or("Error"),
            last["message"].as_str().unwrap_or("")
        ),
        _ => bail!("the deployment stream ended without a result"),
    }
}

fn summary(p: &Project, endpoint: &str, result: &Value, elapsed: f64) {
    if result["changed"] == false {
        println!("No changes to deploy. Deployment skipped. ({elapsed:.1}s)");
        return;
    }
    println!(
        "✔ Service deployed to {} stage {} at {endpoint} ({elapsed:.1}s)",
        p.service.service, p.service.stage
    );
    println!("functions:");
    for f in result["functions"].as_array().into_iter().flatten() {
        let version = f["version"]
            .as_str()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default();
        println!(
            "  {}: {} ({}{version})",
            f["key"].as_str().unwrap_or(""),
            f["name"].as_str().unwrap_or(""),
            f["action"].as_str().unwrap_or("")
        );
    }
    if let Some(ts) = result["timestamp"].as_i64() {
        println!("deployment: {ts}");
    }
}

/// Packages, uploads and deploys `p` (or one function) to `api`.
pub(crate) async fn deploy_project(
    p: &Project,
    api: &Api,
    g: &Global,
    only: Option<&str>,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let progress = Progress::new(
        g.verbose,
        &format!(
            "Deploying {} to stage {}",
            p.service.service, p.service.stage
        ),
    );
    if let Some(key) = only {
        p.function(key)?;
    }
    let packages = pack::package(p, only, &|s| progress.step(s))?;
    upload(api, g, &packages, &progress).await?;
    let body = request(p, &packages, only)?;
    let result = stream(
        api,
        &format!("{}/deployments", p.api_path()),
        body,
        &progress,
    )
    .await;
    progress.finish();
    let result = result?;
    summary(p, &g.endpoint, &result, started.elapsed().as_secs_f64());
    Ok(result)
}

pub(crate) async fn run(g: &Global, args: DeployArgs) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    match args.what {
        None => deploy_project(&p, &api, g, None).await.map(|_| ()),
        Some(DeployWhat::Function { function }) => deploy_project(&p, &api, g, Some(&function))
            .await
            .map(|_| ()),
        Some(DeployWhat::List) => {
            let r = api
                .call("GET", &format!("{}/deployments", p.api_path()), &[], "")
                .await
                .map_err(|e| unreachable(&g.endpoint, e))?;
            if r.status != 200 {
                return Err(server_error("listing deployments", &r));
            }
            let v = r.json()?;
            let list = v["deployments"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!(
                    "No deployments of {} stage {}.",
                    p.service.service, p.service.stage
                );
            }
            for d in list {
                let ts = d["timestamp"].as_i64().unwrap_or(0);
                let when = time::OffsetDateTime::from_unix_timestamp_nanos(ts as i128 * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                println!("Timestamp: {ts}  ({when})");
                for f in d["functions"].as_array().into_iter().flatten() {
                    println!(
                        "  {}: {}{}",
                        f["key"].as_str().unwrap_or(""),
                        f["action"].as_str().unwrap_or(""),
                        f["version"]
                            .as_str()
                            .map(|v| format!(" version {v}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
    }
}

pub(crate) async fn rollback(g: &Global, args: RollbackArgs) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    let started = Instant::now();
    let progress = Progress::new(
        g.verbose,
        &format!(
            "Rolling back {} stage {} to {}",
            p.service.service, p.service.stage, args.timestamp
        ),
    );
    let result = stream(
        &api,
        &format!("{}/rollback", p.api_path()),
        json!({ "timestamp": args.timestamp }),
        &progress,
    )
    .await;
    progress.finish();
    let result = result.map_err(|e| {
        if e.to_string().contains("no deployment") {
            e.context("see `stratus deploy list` for the timestamps")
        } else {
            e
        }
    })?;
    summary(&p, &g.endpoint, &result, started.elapsed().as_secs_f64());
    Ok(())
}

pub(crate) async fn remove(g: &Global) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    let r = api
        .call("DELETE", &p.api_path(), &[], "")
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status != 200 {
        return Err(server_error("removing the service", &r));
    }
    let removed = r.json()?;
    println!(
        "✔ Service {} stage {} has been successfully removed",
        p.service.service, p.service.stage
    );
    for f in removed["removed"].as_array().into_iter().flatten() {
        println!("  removed {}", f.as_str().unwrap_or(""));
    }
    Ok(())
}
