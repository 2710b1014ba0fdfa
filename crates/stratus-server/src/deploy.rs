//! Service deployments: a whole `serverless.yml` service+stage applied at once.
//!
//! The CLI uploads code packages the server lacks (by sha256), then posts a
//! [`DeployRequest`]. [`apply`] validates everything first (names, settings, that
//! every package is stored) so a bad request changes nothing, then for each function:
//! creates it or updates `$LATEST` when code or configuration differ, publishes a new
//! immutable version only when something changed, sets reserved concurrency, and for
//! `provisionedConcurrency` warms the new version's environments and moves the
//! `provisioned` alias only once they are READY (traffic through the alias never
//! meets a cold start during a deploy), and makes the function's tags exactly the
//! manifest's (tags are not part of a version, so a tags-only change publishes
//! nothing). Functions gone from the file are deleted.
//! Unchanged inputs change nothing and record no deployment, unless the request says
//! `force` (`deploy --force`): then every function's code and configuration are
//! applied again (a version is published only if none matches) and a deployment is
//! recorded. Each step is reported through a channel (the API streams them to the
//! CLI as NDJSON).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::{ApiError, ErrorKind};
use crate::model::Environment;
use crate::registry::{CodeInput, FunctionInput, Preconditions, Registry};
use crate::store::{DeploymentStore, Stores};

pub use crate::model::PROVISIONED_ALIAS;
/// How long a deployment waits for provisioned environments to become READY.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// One function of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeployFunction {
    /// Key under `functions:` in serverless.yml.
    pub key: String,
    /// Deployed function name.
    pub name: String,
    /// Lambda runtime identifier (`nodejs20.x`).
    pub runtime: String,
    /// Handler (`file.function`; `bootstrap` for `provided`).
    pub handler: String,
    /// Memory in MB.
    pub memory_size: u32,
    /// Timeout in seconds.
    pub timeout: u32,
    #[serde(default)]
    /// Environment variables (provider's and the function's, merged).
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    /// Description.
    pub description: String,
    #[serde(default = "default_storage")]
    /// `/tmp` size in MB.
    pub ephemeral_storage: u32,
    #[serde(default)]
    /// `x86_64` or `arm64`.
    pub architecture: Option<String>,
    /// sha256 (hex) of the uploaded code package.
    pub code_sha256: String,
    #[serde(default)]
    /// Provisioned concurrency behind the `provisioned` alias.
    pub provisioned_concurrency: Option<u32>,
    #[serde(default)]
    /// Reserved concurrency.
    pub reserved_concurrency: Option<u32>,
    /// Asynchronous invocation: retries (0-2).
    #[serde(default)]
    pub maximum_retry_attempts: Option<u32>,
    /// Asynchronous invocation: maximum event age, seconds (60-21600).
    #[serde(default)]
    pub maximum_event_age: Option<u32>,
    /// `destinations.onSuccess`: a function name or ARN.
    #[serde(default)]
    pub on_success: Option<String>,
    /// `destinations.onFailure`: a function name or ARN.
    #[serde(default)]
    pub on_failure: Option<String>,
    /// `onError`: the dead-letter target ARN.
    #[serde(default)]
    pub dead_letter_target: Option<String>,
    /// `kmsKeyArn`: shown as the function's `KMSKeyArn` (not used to seal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// The function's `events` from serverless.yml (schedules are wired today).
    #[serde(default)]
    pub events: Vec<stratus_manifest::model::Event>,
    /// The function's tags (`provider.tags` merged with its own). When absent, the
    /// tags of this function in the request's `manifest` are used, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The execution role's policy document (JSON). When absent, it is built from
    /// the request's `manifest` (`crate::roles`); either way it is checked before
    /// anything is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_policy: Option<String>,
    /// Whether the function may reach the outside (`custom.stratus.egress`).
    #[serde(default)]
    pub egress: bool,
    /// `concurrencyAutoscaling`, when on: the `provisioned` alias is a scalable
    /// target (`crate::autoscale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_autoscaling: Option<stratus_manifest::schema::ConcurrencyAutoscaling>,
}

fn default_storage() -> u32 {
    512
}

/// A deployment of one service stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRequest {
    /// Every function of the service (or, with `partial`, those to update).
    pub functions: Vec<DeployFunction>,
    /// Only these functions (`deploy function -f`): others are left alone.
    #[serde(default)]
    pub partial: bool,
    /// Apply every function even when nothing changed (`deploy --force`).
    #[serde(default)]
    pub force: bool,
    /// The resolved manifest, kept with the deployment record.
    #[serde(default)]
    pub manifest: serde_json::Value,
    /// Queues from `resources` (`AWS::SQS::Queue`), created or updated first.
    #[serde(default)]
    pub queues: Vec<QueueDef>,
}

/// A queue of the service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueDef {
    /// Queue name.
    pub name: String,
    /// SQS attributes (`VisibilityTimeout`, `RedrivePolicy`, ...), as strings.
    #[serde(default)]
    pub attributes: std::collections::HashMap<String, String>,
}

/// What happened to one function.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionResult {
    /// Key under `functions:` in serverless.yml.
    pub key: String,
    /// Deployed function name.
    pub name: String,
    /// `created`, `updated`, `unchanged` or `deleted`.
    pub action: String,
    /// The version now serving (none for deleted functions).
    pub version: Option<String>,
}

/// The outcome of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployResult {
    /// The service.
    pub service: String,
    /// The stage.
    pub stage: String,
    /// Epoch milliseconds of the recorded deployment; `None` when nothing changed.
    pub timestamp: Option<i64>,
    /// Whether anything changed.
    pub changed: bool,
    /// What happened to each function.
    pub functions: Vec<FunctionResult>,
}

/// Progress, streamed to the client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A step is starting.
    Step {
        /// The function (its serverless.yml key).
        function: String,
        /// What is being done.
        message: String,
    },
    /// The deployment finished.
    Done {
        /// The outcome.
        result: DeployResult,
    },
    /// The deployment failed at `step`.
    Error {
        /// The step that failed (`function: message`).
        step: String,
        /// The AWS error type.
        error_type: String,
        /// The error message.
        message: String,
    },
}

struct Ctx<'a> {
    registry: &'a Arc<Registry>,
    autoscaler: &'a crate::autoscale::Autoscaler,
    stores: &'a Stores,
    events: &'a mpsc::Sender<Event>,
    step: String,
    force: bool,
}

impl Ctx<'_> {
    async fn step(&mut self, function: &str, message: String) {
        self.step = format!("{function}: {message}");
        let _ = self
            .events
            .send(Event::Step {
                function: function.to_string(),
                message,
            })
            .await;
    }
}

/// A service or stage name: 1–128 letters, digits, `-`, `_` or `.`, starting with a
/// letter or digit (so never `.` or `..`).
fn valid_key(s: &str) -> bool {
    s.len() <= 128
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// [`valid_key`] for both names of a service stage, as every `/stratus/v1/services`
/// route checks them before looking anything up.
pub fn check_service_stage(service: &str, stage: &str) -> Result<(), ApiError> {
    if valid_key(service) && valid_key(stage) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "service '{service}' and stage '{stage}' must be 1-128 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// Checks what can be checked before anything changes.
fn validate(
    registry: &Registry,
    deployments: &dyn DeploymentStore,
    service: &str,
    stage: &str,
    req: &DeployRequest,
) -> Result<(), ApiError> {
    check_service_stage(service, stage)?;
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for f in &req.functions {
        // A deployed function is named plainly (no `name:qualifier`, no ARN), and
        // its serverless.yml key is a short printable string: both become keys of
        // the stores, never paths.
        if !stratus_rules::is_function_name(&f.name) {
            return Err(ApiError::validation(
                &f.name,
                "functionName",
                "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]{1,64}",
            ));
        }
        if f.key.is_empty() || f.key.len() > 256 || f.key.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "function key {:?} must be 1-256 printable characters",
                f.key
            )));
        }
        if !names.insert(&f.name) || !keys.insert(&f.key) {
            return Err(ApiError::invalid(format!(
                "function {} ({}) appears twice in the deployment",
                f.key, f.name
            )));
        }
        crate::registry::check_settings(
            &f.runtime,
            &f.handler,
            f.memory_size as i64,
            f.timeout as i64,
            Some(&env_of(f)),
            f.ephemeral_storage as i64,
        )
        .map_err(|e| ApiError {
            message: format!("function {}: {}", f.key, e.message),
            ..e
        })?;
        registry
            .runtimes()
            .interpreters()
            .check(&f.runtime)
            .map_err(|e| ApiError::invalid(format!("function {}: {e}", f.key)))?;
        crate::triggers::validate(&f.events)
            .map_err(|e| ApiError::invalid(format!("function {}: {e}", f.key)))?;
        let tags = f.tags.clone().unwrap_or_default();
        crate::registry::check_tags(&tags)
            .and_then(|()| {
                crate::registry::check_tag_count(
                    &registry.identity.function_arn(&f.name),
                    tags.len(),
                )
            })
            .map_err(|e| ApiError {
                message: format!("function {}: {}", f.key, e.message),
                ..e
            })?;
        if let Some(policy) = &f.role_policy {
            stratus_iam::Policy::parse(policy).map_err(|e| {
                ApiError::invalid(format!(
                    "function {}: execution role policy: MalformedPolicyDocument: {e}",
                    f.key
                ))
            })?;
        }
        if !registry.has_blob(&f.code_sha256) {
            return Err(ApiError::invalid(format!(
                "function {}: code package {} has not been uploaded",
                f.key, f.code_sha256
            )));
        }
        if let (Some(p), Some(r)) = (f.provisioned_concurrency, f.reserved_concurrency) {
            if p > r {
                return Err(ApiError::invalid(format!(
                    "function {}: provisionedConcurrency ({p}) must not exceed reservedConcurrency ({r})",
                    f.key
                )));
            }
        }
        // A function of another service must not be taken over silently.
        if let Some(owner) = deployments.owner_of(&f.name)? {
            if owner != (service.to_string(), stage.to_string()) {
                return Err(ApiError::conflict(format!(
                    "function {} belongs to service {} stage {}",
                    f.name, owner.0, owner.1
                )));
            }
        }
    }
    Ok(())
}

fn env_of(f: &DeployFunction) -> Environment {
    Environment {
        variables: f.environment.clone(),
    }
}

/// The function as the deployment wants it; `account` is this server's account
/// id (the role ARN is in it).
fn desired_input(f: &DeployFunction, account: &str) -> FunctionInput {
    FunctionInput {
        function_name: Some(f.name.clone()),
        runtime: Some(f.runtime.clone()),
        role: Some(format!("arn:aws:iam::{account}:role/{}", f.name)),
        handler: Some(f.handler.clone()),
        description: Some(f.description.clone()),
        timeout: Some(f.timeout as i64),
        memory_size: Some(f.memory_size as i64),
        environment: Some(env_of(f)),
        architectures: f.architecture.clone().map(|a| vec![a]),
        ephemeral_storage: Some(crate::model::EphemeralStorage {
            size: f.ephemeral_storage,
        }),
        code: Some(CodeInput {
            blob_sha256: Some(f.code_sha256.clone()),
            ..CodeInput::default()
        }),
        tags: f.tags.clone(),
        role_policy: Some(f.role_policy.clone()),
        egress: Some(f.egress),
        // Always given, so removing it from serverless.yml clears it.
        kms_key_arn: Some(f.kms_key_arn.clone().unwrap_or_default()),
        ..FunctionInput::default()
    }
}

/// Said at every deployment of a function with egress, by what egress means on
/// this server (README, "Security → Sandbox").
fn egress_notice(mode: &str) -> String {
    if let Some(pool) = mode.strip_prefix("routed ") {
        format!("note: egress is on (custom.stratus.egress): its environments reach the outside through NAT from their own network namespace ({pool}); the host's own addresses and other environments stay unreachable")
    } else if let Some(why) = mode.strip_prefix("unavailable: ") {
        format!("warning: egress is on (custom.stratus.egress), but routed egress is unavailable on this server ({why}): its environments will fail to start until the server runs with working nftables, or with --egress-mode host")
    } else {
        "warning: egress is on (custom.stratus.egress): its environments share the host's network namespace, so besides the outside they reach every port listening on the host, its loopback included (the Stratus API and gateway, the Runtime API of other functions with egress, any local service)".into()
    }
}

/// Gives every function without an explicit `role_policy` the one its manifest
/// defines (`crate::roles`); returns the warnings to show, by function key.
fn fill_role_policies(
    req: &mut DeployRequest,
    identity: &crate::registry::Identity,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut warnings = Vec::new();
    if req.manifest.is_null() {
        return Ok(warnings);
    }
    for f in &mut req.functions {
        if f.role_policy.is_some() {
            continue;
        }
        let r = crate::roles::role_policy(&req.manifest, identity, &f.key)
            .map_err(|e| ApiError::invalid(format!("function {}: execution role: {e}", f.key)))?;
        f.role_policy = r.policy;
        warnings.extend(r.warnings.into_iter().map(|w| (f.key.clone(), w)));
    }
    Ok(warnings)
}

/// Gives every function without explicit `tags` those of its entry in the request's
/// manifest (the CLI sends the resolved service, whose functions carry provider tags
/// merged with their own), or none.
fn fill_tags(req: &mut DeployRequest) -> Result<(), ApiError> {
    for f in &mut req.functions {
        if f.tags.is_some() {
            continue;
        }
        let listed = req
            .manifest
            .get("functions")
            .and_then(|fns| fns.get(&f.key))
            .and_then(|m| m.get("tags"));
        let tags = match listed {
            None | Some(serde_json::Value::Null) => BTreeMap::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::invalid(format!(
                    "function {}: the manifest's tags are not a map of strings: {e}",
                    f.key
                ))
            })?,
        };
        f.tags = Some(tags);
    }
    Ok(())
}

/// Whether `$LATEST`'s settings differ from what the deployment asks for.
fn config_differs(c: &crate::model::FunctionConfiguration, f: &DeployFunction) -> bool {
    let env = c
        .environment
        .as_ref()
        .map(|e| e.variables.clone())
        .unwrap_or_default();
    c.runtime != f.runtime
        || c.handler != f.handler
        || c.memory_size != f.memory_size
        || c.timeout != f.timeout
        || env != f.environment
        || c.description != f.description
        || c.kms_key_arn != f.kms_key_arn
        || c.ephemeral_storage.size != f.ephemeral_storage
        || c.dead_letter_config
            .as_ref()
            .and_then(|d| d.target_arn.clone())
            != f.dead_letter_target
        || c.role_policy != f.role_policy
        || c.egress != f.egress
}

/// Applies a deployment, reporting steps on `events`. Runs on a blocking thread
/// (`api::services::stream_deployment`): its registry and store calls block.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    registry: &Arc<Registry>,
    autoscaler: &crate::autoscale::Autoscaler,
    stores: &Stores,
    queues: &Arc<stratus_queue::Queues>,
    service: &str,
    stage: &str,
    mut req: DeployRequest,
    events: &mpsc::Sender<Event>,
) -> Result<DeployResult, (String, ApiError)> {
    let mut ctx = Ctx {
        registry,
        autoscaler,
        stores,
        events,
        step: "validate".into(),
        force: req.force,
    };
    let role_warnings = fill_tags(&mut req)
        .and_then(|()| fill_role_policies(&mut req, &registry.identity))
        .and_then(|w| validate(registry, &*stores.deployments, service, stage, &req).map(|()| w))
        .map_err(|e| ("validate".to_string(), e))?;
    for (key, warning) in role_warnings {
        ctx.step(&key, format!("warning: {warning}")).await;
    }
    let egress_mode = registry.egress_mode();
    for f in req.functions.iter().filter(|f| f.egress) {
        ctx.step(&f.key, egress_notice(&egress_mode)).await;
    }
    for f in &req.functions {
        if let Some(w) = registry
            .runtimes()
            .interpreters()
            .substitute_warning(&f.runtime)
        {
            ctx.step(&f.key, format!("warning: {w}")).await;
        }
    }
    // Queues first (dead-letter targets before the queues that name them), so
    // functions and their event sources find them.
    let mut ordered: Vec<&QueueDef> = req.queues.iter().collect();
    ordered.sort_by_key(|q| q.attributes.contains_key("RedrivePolicy"));
    for q in ordered {
        ctx.step("resources", format!("queue {}", q.name)).await;
        let r = if queues.exists(&q.name).await.unwrap_or(false) {
            queues
                .set_attributes(&q.name, &q.attributes)
                .await
                .map(|_| ())
        } else {
            queues
                .create_queue(&q.name, &q.attributes, &std::collections::HashMap::new())
                .await
                .map(|_| ())
        };
        r.map_err(|e| {
            (
                ctx.step.clone(),
                ApiError::invalid(format!("queue {}: {e}", q.name)),
            )
        })?;
    }
    let mut results = Vec::new();
    for f in &req.functions {
        let r = deploy_function(&mut ctx, service, stage, f).await;
        match r {
            Ok(r) => results.push(r),
            Err(e) => return Err((ctx.step.clone(), e)),
        }
    }
    if !req.partial {
        let wanted: BTreeSet<&str> = req.functions.iter().map(|f| f.key.as_str()).collect();
        let existing = stores
            .deployments
            .service_functions(service, stage)
            .map_err(|e| (ctx.step.clone(), e.into()))?;
        for (key, name) in existing {
            if wanted.contains(key.as_str()) {
                continue;
            }
            ctx.step(&key, format!("deleting {name} (no longer in the service)"))
                .await;
            let r = registry.delete(&name, None);
            autoscaler.forget_function(&name);
            match r {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::ResourceNotFound => {}
                Err(e) => return Err((ctx.step.clone(), e)),
            }
            stores
                .deployments
                .delete_service_function(service, stage, &key)
                .map_err(|e| (ctx.step.clone(), e.into()))?;
            results.push(FunctionResult {
                key,
                name,
                action: "deleted".into(),
                version: None,
            });
        }
    }
    let changed = results.iter().any(|r| r.action != "unchanged");
    let mut result = DeployResult {
        service: service.into(),
        stage: stage.into(),
        timestamp: None,
        changed,
        functions: results,
    };
    if changed {
        let ts = crate::logs::now_ms();
        result.timestamp = Some(ts);
        let request = serde_json::to_string(&req).unwrap_or_default();
        let summary = serde_json::to_string(&result).unwrap_or_default();
        stores
            .deployments
            .add_deployment(service, stage, ts, &request, &summary)
            .map_err(|e| ("record deployment".to_string(), e.into()))?;
    }
    Ok(result)
}

async fn deploy_function(
    ctx: &mut Ctx<'_>,
    service: &str,
    stage: &str,
    f: &DeployFunction,
) -> Result<FunctionResult, ApiError> {
    let registry = ctx.registry;
    let (action, version) = match registry.snapshot(&f.name) {
        None => {
            ctx.step(&f.key, format!("creating {} ({})", f.name, f.runtime))
                .await;
            // A deployment runs on a blocking thread (`stream_deployment`): the
            // registry is called directly.
            registry.create(desired_input(f, &registry.identity.account_id))?;
            ctx.stores
                .deployments
                .put_service_function(service, stage, &f.key, &f.name)?;
            ctx.step(&f.key, "publishing version 1".into()).await;
            let v = registry.publish(&f.name, None, Preconditions::default())?;
            ("created", v.version)
        }
        Some(snap) => {
            ctx.stores
                .deployments
                .put_service_function(service, stage, &f.key, &f.name)?;
            let code_changed = ctx.force || snap.code_hex != f.code_sha256;
            let config_changed = ctx.force || config_differs(&snap.latest, f);
            if code_changed {
                ctx.step(&f.key, "updating code".into()).await;
                let code = CodeInput {
                    blob_sha256: Some(f.code_sha256.clone()),
                    ..CodeInput::default()
                };
                registry.update_code(&f.name, code)?;
            }
            if config_changed {
                ctx.step(&f.key, "updating configuration".into()).await;
                let mut input = desired_input(f, &registry.identity.account_id);
                input.code = None;
                registry.update_configuration(&f.name, input)?;
            }
            let published_matches = snap
                .last_version
                .as_ref()
                .is_some_and(|(c, hex)| *hex == f.code_sha256 && !config_differs(c, f));
            if code_changed || config_changed || !published_matches {
                let v = registry.publish(&f.name, None, Preconditions::default())?;
                ctx.step(&f.key, format!("published version {}", v.version))
                    .await;
                let action = if published_matches && !ctx.force {
                    "unchanged"
                } else {
                    "updated"
                };
                (action, v.version)
            } else {
                let v = snap
                    .last_version
                    .map(|(c, _)| c.version)
                    .unwrap_or_else(|| "$LATEST".into());
                ("unchanged", v)
            }
        }
    };
    let mut changed = action != "unchanged";
    changed |= apply_concurrency(ctx, f, &version).await?;
    changed |= apply_autoscaling(ctx, f).await?;
    changed |= apply_async(ctx, f).await?;
    changed |= apply_tags(ctx, f).await?;
    if ctx
        .stores
        .mappings
        .put_function_events(&f.name, &f.events, crate::logs::now_ms())?
    {
        ctx.step(
            &f.key,
            format!("event sources: {}", describe_events(&f.events)),
        )
        .await;
        changed = true;
    }
    Ok(FunctionResult {
        key: f.key.clone(),
        name: f.name.clone(),
        action: if changed && action == "unchanged" {
            "updated".into()
        } else {
            action.into()
        },
        version: Some(version),
    })
}

fn describe_events(events: &[stratus_manifest::model::Event]) -> String {
    use stratus_manifest::model::Event;
    let parts: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Schedule(s) => format!("schedule {}", s.rate.join(", ")),
            Event::Http(h) => format!("http {} {}", h.method, h.path),
            Event::HttpApi(h) => format!("httpApi {} {}", h.method, h.path),
            Event::Sqs(_) => "sqs".to_string(),
            Event::Other { kind, .. } => kind.clone(),
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

/// Makes the function's tags exactly the deployment's. Tags belong to the function,
/// not to a version, so this never publishes. Returns whether they changed.
async fn apply_tags(ctx: &mut Ctx<'_>, f: &DeployFunction) -> Result<bool, ApiError> {
    let wanted = f.tags.clone().unwrap_or_default();
    let current = ctx
        .registry
        .snapshot(&f.name)
        .map(|s| s.tags)
        .unwrap_or_default();
    if current == wanted {
        return Ok(false);
    }
    let listed: Vec<String> = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ctx.step(
        &f.key,
        if listed.is_empty() {
            "removing tags".to_string()
        } else {
            format!("tags: {}", listed.join(", "))
        },
    )
    .await;
    ctx.registry.set_tags(&f.name, wanted)
}

/// The asynchronous invocation settings (retries, age, destinations) on `$LATEST`,
/// which every qualifier without its own configuration uses. Returns whether they
/// changed.
async fn apply_async(ctx: &mut Ctx<'_>, f: &DeployFunction) -> Result<bool, ApiError> {
    use crate::model::{Destination, DestinationConfig, EventInvokeConfig};
    let registry = ctx.registry;
    let arn = |target: &Option<String>| {
        target.as_ref().map(|t| {
            let t = if t.starts_with("arn:") {
                t.clone()
            } else {
                registry.identity.function_arn(t)
            };
            Destination {
                destination: Some(t),
            }
        })
    };
    let destinations = DestinationConfig {
        on_success: arn(&f.on_success),
        on_failure: arn(&f.on_failure),
    };
    let wanted = EventInvokeConfig {
        maximum_retry_attempts: f.maximum_retry_attempts.map(i64::from),
        maximum_event_age_in_seconds: f.maximum_event_age.map(i64::from),
        destination_config: (destinations != DestinationConfig::default()).then_some(destinations),
        ..EventInvokeConfig::default()
    };
    let current = registry
        .get_event_invoke_config(&f.name, Some("$LATEST"))
        .map(Some)
        .or_else(|e| match e.kind {
            ErrorKind::ResourceNotFound => Ok(None),
            _ => Err(e),
        })?;
    let is_default = wanted == EventInvokeConfig::default();
    let same = current.as_ref().is_some_and(|c| {
        c.maximum_retry_attempts == wanted.maximum_retry_attempts
            && c.maximum_event_age_in_seconds == wanted.maximum_event_age_in_seconds
            && c.destination_config == wanted.destination_config
    });
    if same || (is_default && current.is_none()) {
        return Ok(false);
    }
    if is_default {
        ctx.step(&f.key, "removing asynchronous invocation settings".into())
            .await;
        registry.delete_event_invoke_config(&f.name, Some("$LATEST"))?;
    } else {
        ctx.step(&f.key, "asynchronous invocation settings".into())
            .await;
        registry.put_event_invoke_config(&f.name, Some("$LATEST"), wanted, false)?;
    }
    Ok(true)
}

/// `concurrencyAutoscaling`: the `provisioned` alias's scalable target, policy and
/// scheduled actions (after the alias exists). Returns whether anything changed.
async fn apply_autoscaling(ctx: &mut Ctx<'_>, f: &DeployFunction) -> Result<bool, ApiError> {
    let steps = ctx
        .autoscaler
        .apply_deployed(&f.name, f.concurrency_autoscaling.as_ref())
        .map_err(|e| match e {
            crate::autoscale::AasError::Internal(m) => ApiError::service(m),
            other => ApiError::invalid(format!("concurrencyAutoscaling: {other}")),
        })?;
    for s in &steps {
        ctx.step(&f.key, s.clone()).await;
    }
    Ok(!steps.is_empty())
}

/// Reserved concurrency and the provisioned alias. Returns whether anything changed.
async fn apply_concurrency(
    ctx: &mut Ctx<'_>,
    f: &DeployFunction,
    version: &str,
) -> Result<bool, ApiError> {
    let registry = ctx.registry;
    let snap = registry
        .snapshot(&f.name)
        .ok_or_else(|| ApiError::service("function vanished during deployment"))?;
    let mut changed = false;
    let old_target = snap
        .aliases
        .get(PROVISIONED_ALIAS)
        .map(|a| a.function_version.clone());
    let old_floor: u32 = snap.provisioned.values().sum();
    let mut new_floor = f.provisioned_concurrency.unwrap_or(0);
    if let Some(a) = f.concurrency_autoscaling.as_ref().filter(|_| new_floor > 0) {
        // The autoscaler owns the floor once it has one: a deployment keeps the
        // capacity it reached (within the new bounds) instead of resetting it to
        // `provisionedConcurrency`, which is only the starting point.
        let reached = old_target
            .as_deref()
            .and_then(|t| snap.provisioned.get(t))
            .copied();
        new_floor = reached
            .unwrap_or(new_floor)
            .clamp(a.minimum, a.maximum.max(a.minimum));
    }

    // Raise the reservation before the floor moves (the new floor must fit); lower
    // or remove it afterwards (the old floor is gone by then).
    if let Some(r) = f.reserved_concurrency {
        if r >= old_floor && snap.reserved.is_none_or(|cur| r > cur) {
            ctx.step(&f.key, format!("reserved concurrency {r}")).await;
            registry.put_reserved(&f.name, r as i64)?;
            changed = true;
        }
    }

    if new_floor > 0 {
        let current = snap.provisioned.get(version).copied();
        if old_target.as_deref() != Some(version) || current != Some(new_floor) {
            changed = true;
            let replacing = old_target.as_deref().filter(|t| *t != version);
            ctx.step(
                &f.key,
                format!("warming {new_floor} provisioned environments of version {version}"),
            )
            .await;
            registry.put_provisioned_replacing(
                &f.name,
                Some(version),
                new_floor as i64,
                replacing,
            )?;
            wait_ready(ctx, f, version, new_floor).await?;
            match &old_target {
                None => {
                    registry.create_alias(&f.name, PROVISIONED_ALIAS, version, None, None)?;
                }
                Some(_) => {
                    registry.update_alias(
                        &f.name,
                        PROVISIONED_ALIAS,
                        Some(version.to_string()),
                        None,
                        None,
                        None,
                    )?;
                }
            }
            ctx.step(
                &f.key,
                format!("alias {PROVISIONED_ALIAS} -> version {version}"),
            )
            .await;
            for (q, _) in snap
                .provisioned
                .iter()
                .filter(|(q, _)| q.as_str() != version)
            {
                registry.delete_provisioned(&f.name, Some(q))?;
            }
        }
    } else if old_target.is_some() || !snap.provisioned.is_empty() {
        changed = true;
        ctx.step(&f.key, "removing provisioned concurrency".into())
            .await;
        for q in snap.provisioned.keys() {
            registry.delete_provisioned(&f.name, Some(q))?;
        }
        registry.delete_alias(&f.name, PROVISIONED_ALIAS)?;
    }

    if f.reserved_concurrency != registry.snapshot(&f.name).and_then(|s| s.reserved) {
        changed = true;
        match f.reserved_concurrency {
            Some(r) => {
                ctx.step(&f.key, format!("reserved concurrency {r}")).await;
                registry.put_reserved(&f.name, r as i64)?;
            }
            None => {
                ctx.step(&f.key, "removing reserved concurrency".into())
                    .await;
                registry.delete_reserved(&f.name)?;
            }
        }
    }
    Ok(changed)
}

async fn wait_ready(
    ctx: &mut Ctx<'_>,
    f: &DeployFunction,
    version: &str,
    n: u32,
) -> Result<(), ApiError> {
    let started = Instant::now();
    let mut last = u32::MAX;
    loop {
        let (status, _) = ctx.registry.get_provisioned(&f.name, Some(version))?;
        if status.available != last {
            last = status.available;
            ctx.step(
                &f.key,
                format!("provisioned environments ready: {}/{n}", status.available),
            )
            .await;
        }
        match status.status {
            "READY" => return Ok(()),
            "FAILED" => {
                let _ = ctx.registry.delete_provisioned(&f.name, Some(version));
                return Err(ApiError::invalid(format!(
                    "provisioned concurrency for version {version} failed: {}",
                    status.reason.unwrap_or_else(|| "init failed".into())
                )));
            }
            _ if started.elapsed() > READY_TIMEOUT => {
                let _ = ctx.registry.delete_provisioned(&f.name, Some(version));
                return Err(ApiError::service(format!(
                    "provisioned environments of version {version} were not READY after {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Removes every function of a service stage and its history.
pub fn remove(
    registry: &Registry,
    autoscaler: &crate::autoscale::Autoscaler,
    deployments: &dyn DeploymentStore,
    service: &str,
    stage: &str,
) -> Result<Vec<String>, ApiError> {
    let functions = deployments.service_functions(service, stage)?;
    let mut removed = Vec::new();
    for (_, name) in functions {
        autoscaler.forget_function(&name);
        match registry.delete(&name, None) {
            Ok(()) => removed.push(name),
            Err(e) if e.kind == ErrorKind::ResourceNotFound => {}
            Err(e) => return Err(e),
        }
    }
    deployments.delete_service(service, stage)?;
    Ok(removed)
}

#[cfg(test)]
mod role_tests {
    use super::*;

    #[test]
    fn the_role_arn_is_in_the_servers_account() {
        let f: DeployFunction = serde_json::from_value(serde_json::json!({
            "key": "hello", "name": "svc-dev-hello", "runtime": "nodejs20.x",
            "handler": "h.handler", "memorySize": 1024, "timeout": 6,
            "codeSha256": "00",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            desired_input(&f, "123456789012").role.as_deref(),
            Some("arn:aws:iam::123456789012:role/svc-dev-hello")
        );
    }
}
