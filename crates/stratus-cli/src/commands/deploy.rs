//! `package [--package DIR]`, `deploy` (`--package DIR`, `--force`; `deploy function -f
//! [--update-config]`, `deploy list [functions]`), `rollback -t` (`rollback function
//! -f --function-version`), `remove`.
//!
//! `package` writes, next to the zips, the deployment plan ([`PLAN_FILE`]): the exact
//! request `deploy` would send, so `deploy --package DIR` deploys that package later
//! without reading or building any source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{server_error, unreachable};
use crate::client::Api;
use crate::pack::{self, Artifact, Packages};
use crate::project::{self, Project};
use crate::ui::{self, Progress};
use crate::Global;

/// The deployment plan `package` writes next to the packages.
pub(crate) const PLAN_FILE: &str = "stratus-deployment.json";
/// Bumped when the plan's shape changes incompatibly.
const PLAN_FORMAT: u64 = 1;

/// `stratus package` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct PackageArgs {
    /// Write the packages and the deployment plan to DIR instead of `.serverless/`
    /// (`stratus deploy --package DIR` deploys them).
    #[arg(long, short = 'p', value_name = "DIR")]
    package: Option<PathBuf>,
    /// No effect on Stratus (there is no CloudFormation template).
    #[arg(long = "minify-template")]
    minify_template: bool,
}

/// `stratus deploy` options.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct DeployArgs {
    #[command(subcommand)]
    what: Option<DeployWhat>,
    /// Deploy the package in DIR (from `stratus package --package DIR`) as it is,
    /// without packaging again.
    #[arg(long, short = 'p', value_name = "DIR")]
    package: Option<PathBuf>,
    /// Deploy even when nothing changed: code and configuration are applied again and
    /// a deployment is recorded.
    #[arg(long)]
    force: bool,
    /// No effect on Stratus (it prints no secrets).
    #[arg(long)]
    conceal: bool,
    /// No effect on Stratus (packages go straight to the server, not through S3).
    #[arg(long = "aws-s3-accelerate")]
    aws_s3_accelerate: bool,
    /// No effect on Stratus (versions follow the code's sha256 and the configuration).
    #[arg(long = "enforce-hash-update")]
    enforce_hash_update: bool,
    /// No effect on Stratus (there is no CloudFormation template).
    #[arg(long = "minify-template")]
    minify_template: bool,
}

#[derive(Debug, Clone, Subcommand)]
enum DeployWhat {
    /// Update one function's code and configuration (its provisioned alias included).
    Function {
        /// The function (its key under `functions:`).
        #[arg(long, short = 'f')]
        function: String,
        /// Deploy even when the function's code and configuration are unchanged.
        #[arg(long)]
        force: bool,
        /// Only the configuration (memory, timeout, environment, ...): nothing is
        /// packaged or uploaded; the deployed code stays.
        #[arg(long = "update-config", short = 'u')]
        update_config: bool,
    },
    /// List the deployments of this service stage.
    List {
        #[command(subcommand)]
        what: Option<ListWhat>,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum ListWhat {
    /// List the deployed functions and their published versions.
    Functions,
}

/// `stratus rollback` options.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct RollbackArgs {
    #[command(subcommand)]
    function: Option<RollbackWhat>,
    /// Timestamp of the deployment to roll back to (without it, the deployments are
    /// listed).
    #[arg(long, short = 't')]
    timestamp: Option<i64>,
}

#[derive(Debug, Clone, Subcommand)]
enum RollbackWhat {
    /// Put the code of one of a function's published versions back on `$LATEST`.
    Function {
        /// The function (its key under `functions:`).
        #[arg(long, short = 'f')]
        function: String,
        /// The published version whose code to restore.
        #[arg(long = "function-version", value_name = "VERSION")]
        function_version: String,
    },
}

/// How a deployment goes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DeployOptions {
    /// Apply everything even when nothing changed.
    pub(crate) force: bool,
    /// `deploy function --update-config`: the deployed code stays, nothing is packaged.
    pub(crate) config_only: bool,
}

/// The directory `--package` names, relative to the current directory.
fn package_dir(arg: &Path) -> anyhow::Result<PathBuf> {
    if arg.is_absolute() {
        return Ok(arg.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current directory")?
        .join(arg))
}

pub(crate) async fn package(g: &Global, args: PackageArgs) -> anyhow::Result<()> {
    if args.minify_template {
        ui::no_effect("minify-template", "there is no CloudFormation template");
    }
    let p = project::load(g)?;
    let out_dir = match &args.package {
        Some(d) => {
            let dir = package_dir(d)?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // Shown and recorded without `..` detours.
            let dir = dir
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            // The packages would then select themselves (and everything else).
            if p.dir.canonicalize().is_ok_and(|s| s.starts_with(&dir)) {
                bail!(
                    "--package {}: that is the service directory or holds it; name a directory of its own (e.g. artifacts)",
                    dir.display()
                );
            }
            dir
        }
        None => p.output_dir(),
    };
    let progress = Progress::new(g.verbose, "Packaging");
    let packages = pack::package(&p, None, &out_dir, &|s| progress.step(s))?;
    let plan = write_plan(&p, &packages, &out_dir);
    progress.finish();
    let plan = plan?;
    for a in packages.distinct() {
        println!(
            "{}  {}  ({} bytes)",
            a.sha256,
            a.path.display(),
            a.bytes.len()
        );
    }
    println!("plan  {}", plan.display());
    Ok(())
}

/// Writes the deployment plan for `packages` (all of `p`'s functions) into `dir`.
fn write_plan(p: &Project, packages: &Packages, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut files = serde_json::Map::new();
    for a in packages.distinct() {
        let name = a
            .path
            .strip_prefix(dir)
            .with_context(|| format!("{} is not inside {}", a.path.display(), dir.display()))?;
        files.insert(
            a.sha256.clone(),
            Value::String(name.to_string_lossy().into_owned()),
        );
    }
    let plan = json!({
        "format": PLAN_FORMAT,
        "service": p.service.service,
        "stage": p.service.stage,
        "packages": files,
        "request": request(p, &packages.shas(), None)?,
    });
    let path = dir.join(PLAN_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&plan)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Reads the plan and the packages in `dir`, checking they belong to `p`'s service
/// and stage and are the bytes that were packaged.
fn read_plan(p: &Project, dir: &Path) -> anyhow::Result<(Value, Vec<Artifact>)> {
    let path = dir.join(PLAN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} has no {PLAN_FILE}: not a package written by `stratus package --package {}`",
            dir.display(),
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let plan: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    if plan["format"].as_u64() != Some(PLAN_FORMAT) {
        bail!(
            "{}: unknown plan format {} (this stratus reads format {PLAN_FORMAT}); package again",
            path.display(),
            plan["format"]
        );
    }
    let (service, stage) = (
        plan["service"].as_str().unwrap_or(""),
        plan["stage"].as_str().unwrap_or(""),
    );
    if service != p.service.service {
        bail!(
            "{} is a package of service \"{service}\", not \"{}\" (from {})",
            dir.display(),
            p.service.service,
            p.config_file.display()
        );
    }
    if stage != p.service.stage {
        bail!(
            "{} was packaged for stage \"{stage}\", not \"{}\"; package again with --stage {}",
            dir.display(),
            p.service.stage,
            p.service.stage
        );
    }
    let mut artifacts = Vec::new();
    for (sha, file) in plan["packages"].as_object().into_iter().flatten() {
        let file = file
            .as_str()
            .with_context(|| format!("{}: packages.{sha} is not a file name", path.display()))?;
        let zip = dir.join(file);
        let bytes = std::fs::read(&zip).with_context(|| {
            format!(
                "the package {} (named in {PLAN_FILE}) cannot be read",
                zip.display()
            )
        })?;
        let actual = stratus_package::sha256_hex(&bytes);
        if actual != *sha {
            bail!(
                "{} changed since it was packaged (sha256 {actual}, the plan says {sha}); package again",
                zip.display()
            );
        }
        artifacts.push(Artifact {
            path: zip,
            bytes,
            sha256: actual,
        });
    }
    let request = &plan["request"];
    let functions = request["functions"]
        .as_array()
        .with_context(|| format!("{}: the request has no functions", path.display()))?;
    for f in functions {
        let sha = f["codeSha256"].as_str().unwrap_or("");
        if !artifacts.iter().any(|a| a.sha256 == sha) {
            bail!(
                "{}: function {} needs package {sha}, which the plan does not list",
                path.display(),
                f["key"]
            );
        }
    }
    Ok((request.clone(), artifacts))
}

/// Uploads the packages the server does not have yet.
async fn upload(
    api: &Api,
    g: &Global,
    artifacts: &[&Artifact],
    progress: &Progress,
) -> anyhow::Result<()> {
    for a in artifacts {
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

/// The deployment request for `p`'s functions (all, or `only`), each with its code
/// package's sha256 from `shas` (function key → hex).
pub(crate) fn request(
    p: &Project,
    shas: &BTreeMap<String, String>,
    only: Option<&str>,
) -> anyhow::Result<Value> {
    let (queues, arns) = queue_resources(p)?;
    let mut functions = Vec::new();
    for (key, f) in &p.service.functions {
        if only.is_some_and(|o| o != key) {
            continue;
        }
        let sha = shas
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
            "codeSha256": sha,
            "provisionedConcurrency": f.provisioned_concurrency.filter(|n| *n > 0),
            "reservedConcurrency": f.reserved_concurrency,
            "concurrencyAutoscaling": f.concurrency_autoscaling,
            "maximumRetryAttempts": (f.maximum_retry_attempts != 2).then_some(f.maximum_retry_attempts),
            "maximumEventAge": (f.maximum_event_age != 21_600).then_some(f.maximum_event_age),
            "onSuccess": f.destinations.as_ref().and_then(|d| destination(p, d.on_success.as_ref())),
            "onFailure": f.destinations.as_ref().and_then(|d| destination(p, d.on_failure.as_ref())),
            "deadLetterTarget": f.on_error.as_ref().and_then(|v| v.as_str().map(str::to_string)),
            "kmsKeyArn": f.kms_key_arn,
            "egress": f.egress,
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
                let function = ev["function"].as_str().unwrap_or("");
                let message = ev["message"].as_str().unwrap_or("");
                // Warnings (an execution role that cannot be honoured, egress) and
                // notes (egress) are said even without --verbose.
                if let Some(w) = message.strip_prefix("warning: ") {
                    progress.warn(&format!("function {function}: {w}"));
                } else if let Some(n) = message.strip_prefix("note: ") {
                    progress.note(&format!("function {function}: {n}"));
                } else {
                    progress.step(&format!("{function}: {message}"));
                }
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
    deploy_with(p, api, g, only, DeployOptions::default()).await
}

/// [`deploy_project`] with options. A whole-service deployment also leaves its plan in
/// `.serverless/`, so that directory is a package `deploy --package` takes.
pub(crate) async fn deploy_with(
    p: &Project,
    api: &Api,
    g: &Global,
    only: Option<&str>,
    opts: DeployOptions,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let progress = Progress::new(
        g.verbose,
        &format!(
            "Deploying {} to stage {}",
            p.service.service, p.service.stage
        ),
    );
    let result = async {
        if let Some(key) = only {
            p.function(key)?;
        }
        let mut body = if opts.config_only {
            let key = only.context("--update-config needs a function")?;
            progress.step(&format!(
                "{key}: configuration only, the deployed code stays"
            ));
            let sha = deployed_code_sha(api, g, p, key).await?;
            request(p, &BTreeMap::from([(key.to_string(), sha)]), only)?
        } else {
            let packages = pack::package(p, only, &p.output_dir(), &|s| progress.step(s))?;
            if only.is_none() {
                write_plan(p, &packages, &p.output_dir())?;
            }
            upload(api, g, &packages.distinct(), &progress).await?;
            request(p, &packages.shas(), only)?
        };
        body["force"] = Value::Bool(opts.force);
        stream(
            api,
            &format!("{}/deployments", p.api_path()),
            body,
            &progress,
        )
        .await
    }
    .await;
    progress.finish();
    let result = result?;
    summary(p, &g.endpoint, &result, started.elapsed().as_secs_f64());
    Ok(result)
}

/// Deploys the package in `dir` (written by `package --package`) without packaging.
async fn deploy_package(
    p: &Project,
    api: &Api,
    g: &Global,
    dir: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut body, artifacts) = read_plan(p, dir)?;
    let progress = Progress::new(
        g.verbose,
        &format!(
            "Deploying {} to stage {} from {}",
            p.service.service,
            p.service.stage,
            dir.display()
        ),
    );
    let result = async {
        upload(api, g, &artifacts.iter().collect::<Vec<_>>(), &progress).await?;
        body["force"] = Value::Bool(force);
        stream(
            api,
            &format!("{}/deployments", p.api_path()),
            body,
            &progress,
        )
        .await
    }
    .await;
    progress.finish();
    summary(p, &g.endpoint, &result?, started.elapsed().as_secs_f64());
    Ok(())
}

/// The sha256 (hex) of the code the function `key` runs on the server now.
async fn deployed_code_sha(
    api: &Api,
    g: &Global,
    p: &Project,
    key: &str,
) -> anyhow::Result<String> {
    let name = &p.function(key)?.name;
    let r = api
        .call("GET", &format!("/2015-03-31/functions/{name}"), &[], "")
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status == 404 {
        bail!("function {key} ({name}) is not deployed yet, so it has no code to keep: deploy it once without --update-config");
    }
    if r.status != 200 {
        return Err(server_error(&format!("reading function {name}"), &r));
    }
    code_sha_hex(&r.json()?, name)
}

/// A GetFunction reply's `CodeSha256` (base64) as the hex the blob store names it by.
fn code_sha_hex(reply: &Value, name: &str) -> anyhow::Result<String> {
    let b64 = reply["Configuration"]["CodeSha256"]
        .as_str()
        .with_context(|| format!("GetFunction {name} returned no CodeSha256"))?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("GetFunction {name}: CodeSha256 {b64} is not base64"))?;
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Notes for `deploy`'s options that mean nothing here.
fn note_no_ops(args: &DeployArgs) {
    if args.conceal {
        ui::no_effect("conceal", "it prints no secrets");
    }
    if args.aws_s3_accelerate {
        ui::no_effect(
            "aws-s3-accelerate",
            "packages go straight to the server, not through S3",
        );
    }
    if args.enforce_hash_update {
        ui::no_effect(
            "enforce-hash-update",
            "versions follow the code's sha256 and the configuration",
        );
    }
    if args.minify_template {
        ui::no_effect("minify-template", "there is no CloudFormation template");
    }
}

pub(crate) async fn run(g: &Global, args: DeployArgs) -> anyhow::Result<()> {
    note_no_ops(&args);
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    match args.what {
        None => match &args.package {
            Some(dir) => deploy_package(&p, &api, g, &package_dir(dir)?, args.force).await,
            None => {
                let opts = DeployOptions {
                    force: args.force,
                    config_only: false,
                };
                deploy_with(&p, &api, g, None, opts).await.map(|_| ())
            }
        },
        Some(DeployWhat::Function {
            function,
            force,
            update_config,
        }) => {
            let opts = DeployOptions {
                force,
                config_only: update_config,
            };
            deploy_with(&p, &api, g, Some(&function), opts)
                .await
                .map(|_| ())
        }
        Some(DeployWhat::List { what: None }) => list_deployments(&p, &api, g).await,
        Some(DeployWhat::List {
            what: Some(ListWhat::Functions),
        }) => list_functions(&p, &api, g).await,
    }
}

/// `deploy list`: the recorded deployments, oldest first.
async fn list_deployments(p: &Project, api: &Api, g: &Global) -> anyhow::Result<()> {
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

/// `deploy list functions`: each deployed function and its published versions.
async fn list_functions(p: &Project, api: &Api, g: &Global) -> anyhow::Result<()> {
    let r = api
        .call("GET", &p.api_path(), &[], "")
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status == 404 {
        bail!(
            "{} stage {} is not deployed at {} (run `stratus deploy`)",
            p.service.service,
            p.service.stage,
            g.endpoint
        );
    }
    if r.status != 200 {
        return Err(server_error("reading the service", &r));
    }
    let info = r.json()?;
    println!("Listing functions and their last 5 versions:");
    for f in info["functions"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("");
        let r = api
            .call(
                "GET",
                &format!("/2015-03-31/functions/{name}/versions"),
                &[],
                "",
            )
            .await
            .map_err(|e| unreachable(&g.endpoint, e))?;
        if r.status != 200 {
            return Err(server_error(&format!("listing versions of {name}"), &r));
        }
        let versions: Vec<String> = r.json()?["Versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["Version"].as_str())
            .filter(|v| *v != "$LATEST")
            .map(str::to_string)
            .collect();
        let last = &versions[versions.len().saturating_sub(5)..];
        println!(
            "{}: {}",
            f["key"].as_str().unwrap_or(name),
            if last.is_empty() {
                "none published".to_string()
            } else {
                last.join(", ")
            }
        );
    }
    Ok(())
}

pub(crate) async fn rollback(g: &Global, args: RollbackArgs) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let api = Api::new(&g.endpoint);
    if let Some(RollbackWhat::Function {
        function,
        function_version,
    }) = &args.function
    {
        return rollback_function(&p, &api, g, function, function_version).await;
    }
    let Some(timestamp) = args.timestamp else {
        list_deployments(&p, &api, g).await?;
        bail!("which deployment? give its timestamp: `stratus rollback -t TIMESTAMP`");
    };
    let started = Instant::now();
    let progress = Progress::new(
        g.verbose,
        &format!(
            "Rolling back {} stage {} to {timestamp}",
            p.service.service, p.service.stage
        ),
    );
    let result = stream(
        &api,
        &format!("{}/rollback", p.api_path()),
        json!({ "timestamp": timestamp }),
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

/// `rollback function`: as the Serverless Framework does, only the code of `version`
/// goes back onto `$LATEST` (no configuration, nothing published; the next `deploy`
/// publishes it if it differs from the last version).
async fn rollback_function(
    p: &Project,
    api: &Api,
    g: &Global,
    key: &str,
    version: &str,
) -> anyhow::Result<()> {
    let name = &p.function(key)?.name;
    println!("Rolling back function {key} to version \"{version}\"");
    let r = api
        .call(
            "GET",
            &format!("/2015-03-31/functions/{name}?Qualifier={version}"),
            &[],
            "",
        )
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status == 404 {
        bail!("function {key} ({name}) has no version {version} (see `stratus deploy list functions`)");
    }
    if r.status != 200 {
        return Err(server_error(
            &format!("reading {name} version {version}"),
            &r,
        ));
    }
    let sha = code_sha_hex(&r.json()?, name)?;
    let r = api
        .call(
            "PUT",
            &format!("/2015-03-31/functions/{name}/code"),
            &[],
            json!({ "StratusBlobSha256": sha }).to_string(),
        )
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    if r.status != 200 {
        return Err(server_error(&format!("updating the code of {name}"), &r));
    }
    println!("✔ Successfully rolled back function {key} to version \"{version}\"");
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
