//! The resolved service: what the server and the CLI consume. Every variable is
//! substituted, every default applied (provider settings are copied into each
//! function), every name computed. Serializable, with a fixed field order and
//! sorted maps, so the same configuration always serializes to the same bytes.
//!
//! `lower` turns the checked `schema::Config` into a [`Service`]; it depends
//! on `schema`, never the reverse. The value types that the schema reads and
//! the service carries as they are ([`Runtime`], [`Event`], [`ApiCors`], …)
//! live in the leaf module `types` and are re-exported from here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::schema::reader::Checker;
use crate::schema::{Config, CorsSettings, FunctionConfig};

pub use crate::types::{
    ApiCors, Architecture, Destination, Destinations, Event, FunctionUrl, HttpApiEvent, HttpCors,
    HttpEvent, Runtime, RuntimeFamily, ScheduleEvent, SqsEvent, DEFAULT_SQS_BATCH_SIZE,
};

/// Default stage, as in the Serverless Framework.
pub const DEFAULT_STAGE: &str = "dev";
/// Default region, as in the Serverless Framework.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default memory in MB, as in the Serverless Framework (Lambda's is 128).
pub const DEFAULT_MEMORY_SIZE: u32 = 1024;
/// Default timeout in seconds, as in the Serverless Framework (Lambda's is 3).
pub const DEFAULT_TIMEOUT: u32 = 6;
/// Default `/tmp` size in MB, as in Lambda.
pub const DEFAULT_EPHEMERAL_STORAGE_SIZE: u32 = 512;
/// Default retries of an asynchronous invocation, as in Lambda.
pub const DEFAULT_MAXIMUM_RETRY_ATTEMPTS: u32 = 2;
/// Default maximum age in seconds of an asynchronous event, as in Lambda.
pub const DEFAULT_MAXIMUM_EVENT_AGE: u32 = 21_600;
/// Runtime used when neither the provider nor the function names one (the
/// Serverless Framework's default for Node.js).
pub const DEFAULT_RUNTIME: Runtime = Runtime::Nodejs20;

/// A service, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `service:`.
    pub service: String,
    /// `frameworkVersion:`, as written.
    pub framework_version: Option<String>,
    /// The effective stage: `--stage`, else `provider.stage`, else `dev`.
    pub stage: String,
    /// The effective region: `--region`, else `provider.region`, else `us-east-1`.
    pub region: String,
    /// Provider-wide settings, with defaults applied (also copied into each function).
    pub provider: Provider,
    /// Functions by their key under `functions:`.
    pub functions: BTreeMap<String, ResolvedFunction>,
    /// Service-wide packaging.
    pub package: PackageSettings,
    /// IAM statements for the functions' role: `provider.iam.role.statements`
    /// followed by the older `provider.iamRoleStatements`.
    pub iam_statements: Vec<Json>,
    /// `plugins:` as listed. Plugins are not run.
    pub plugins: Vec<String>,
    /// Effective parameters for the stage: `params.default`, overridden by
    /// `params.<stage>`, overridden by `--param`.
    pub params: BTreeMap<String, Json>,
    /// `custom:` (null when absent).
    pub custom: Json,
    /// `resources:` (null when absent); carried, not deployed.
    pub resources: Json,
}

/// Provider-wide settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    /// Always `aws`.
    pub name: String,
    /// `provider.runtime`, when set.
    pub runtime: Option<Runtime>,
    /// `provider.memorySize`, else 1024.
    pub memory_size: u32,
    /// `provider.timeout`, else 6.
    pub timeout: u32,
    /// `provider.architecture`, else `x86_64`.
    pub architecture: Architecture,
    /// `provider.ephemeralStorageSize`, else 512.
    pub ephemeral_storage_size: u32,
    /// `provider.logRetentionInDays`, when set.
    pub log_retention_in_days: Option<u32>,
    /// `provider.environment`.
    pub environment: BTreeMap<String, String>,
    /// `provider.tags`.
    pub tags: BTreeMap<String, String>,
}

/// One function, with provider defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedFunction {
    /// The key under `functions:` (`hello`).
    pub key: String,
    /// The deployed name: `name:`, else `{service}-{stage}-{key}`.
    pub name: String,
    /// `handler:` (`handler.hello`, `src/app.main`, `bootstrap`).
    pub handler: String,
    /// The function's runtime, else the provider's, else [`DEFAULT_RUNTIME`].
    pub runtime: Runtime,
    /// MB: the function's, else the provider's, else 1024.
    pub memory_size: u32,
    /// Seconds: the function's, else the provider's, else 6.
    pub timeout: u32,
    /// Provider environment merged with the function's (the function wins).
    pub environment: BTreeMap<String, String>,
    /// Event sources, in the order written.
    pub events: Vec<Event>,
    /// Environments kept initialized (0 or absent: none).
    pub provisioned_concurrency: Option<u32>,
    /// Concurrency reserved for, and capping, this function.
    pub reserved_concurrency: Option<u32>,
    /// `concurrencyAutoscaling`, when on (and `provisionedConcurrency` is above 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_autoscaling: Option<crate::schema::ConcurrencyAutoscaling>,
    /// Dead-letter target ARN for failed asynchronous invocations (a string, or
    /// a CloudFormation reference object as written).
    pub on_error: Option<Json>,
    /// Asynchronous invocation destinations.
    pub destinations: Option<Destinations>,
    /// Retries of a failed asynchronous invocation (0–2), default 2.
    pub maximum_retry_attempts: u32,
    /// Seconds an asynchronous event may wait (60–21600), default 21600.
    pub maximum_event_age: u32,
    /// Function URL, when enabled.
    pub url: Option<FunctionUrl>,
    /// Packaging for this function.
    pub package: FunctionPackage,
    /// Layer ARNs (strings, or CloudFormation reference objects as written):
    /// the function's, else the provider's.
    pub layers: Vec<Json>,
    /// Provider tags merged with the function's (the function wins).
    pub tags: BTreeMap<String, String>,
    /// `description:`.
    pub description: Option<String>,
    /// The function's, else the provider's, else `x86_64`.
    pub architecture: Architecture,
    /// MB of `/tmp`: the function's, else the provider's, else 512.
    pub ephemeral_storage_size: u32,
    /// The function's, else the provider's, when set.
    pub log_retention_in_days: Option<u32>,
    /// The function's own `role:` as written (a logical id of an `AWS::IAM::Role` in
    /// `resources`, a role ARN, or a CloudFormation reference), else the provider's
    /// `iam.role` when that names a role; it replaces the provider's role statements
    /// for this function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Json>,
    /// `kmsKeyArn`: the function's, else the provider's. Shown as `KMSKeyArn`;
    /// Stratus seals environments with its own keys whatever it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// Whether the function may reach the network outside its environment
    /// (`custom.stratus.egress`). `vpc:` alone does not grant it: on AWS a
    /// function in a VPC has no internet access without a NAT gateway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub egress: bool,
}

/// Service-wide packaging (`package:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PackageSettings {
    /// Glob patterns in order; `!pattern` excludes. The older `exclude` entries
    /// come first (negated), then `include`, then `patterns`.
    pub patterns: Vec<String>,
    /// Package each function separately.
    pub individually: bool,
    /// A prebuilt zip to deploy instead of packaging.
    pub artifact: Option<String>,
    /// Leave npm dev dependencies out (default true).
    pub exclude_dev_dependencies: bool,
}

/// Packaging of one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FunctionPackage {
    /// The service patterns followed by the function's own.
    pub patterns: Vec<String>,
    /// Packaged on its own (its own or the service's `individually`).
    pub individually: bool,
    /// The function's artifact, else the service's.
    pub artifact: Option<String>,
}

/// Lowers the checked schema into a [`Service`]: applies defaults, merges
/// provider settings into each function, computes names, and checks what
/// spans several settings (name length, total environment size, duplicate
/// deployed names). Problems go to `c`.
pub(crate) fn lower(
    config: Config,
    stage: &str,
    opts: &crate::Options,
    c: &mut Checker,
) -> Service {
    let p = &config.provider;
    let region = opts
        .region
        .clone()
        .or_else(|| opts.cli_options.get("region").cloned())
        .or_else(|| p.region.as_ref().map(|r| r.value.clone()))
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let provider = Provider {
        name: p.name.clone(),
        runtime: p.runtime,
        memory_size: p.memory_size.unwrap_or(DEFAULT_MEMORY_SIZE),
        timeout: p.timeout.unwrap_or(DEFAULT_TIMEOUT),
        architecture: p.architecture.unwrap_or_default(),
        ephemeral_storage_size: p
            .ephemeral_storage_size
            .unwrap_or(DEFAULT_EPHEMERAL_STORAGE_SIZE),
        log_retention_in_days: p.log_retention_in_days,
        environment: p
            .environment
            .as_ref()
            .map(|e| e.value.clone())
            .unwrap_or_default(),
        tags: p.tags.clone(),
    };
    let package = PackageSettings {
        patterns: config.package.patterns.clone(),
        individually: config.package.individually.unwrap_or(false),
        artifact: config.package.artifact.clone(),
        exclude_dev_dependencies: config.package.exclude_dev_dependencies.unwrap_or(true),
    };

    if p.runtime.is_none() && config.functions.iter().any(|f| f.runtime.is_none()) {
        let span = p
            .span
            .clone()
            .unwrap_or_else(|| config.service.span.clone());
        c.note(
            &span,
            "provider.runtime",
            format!("not set; functions without `runtime` use {DEFAULT_RUNTIME}"),
        );
    }

    let http_api_cors = p
        .http_api
        .cors
        .as_ref()
        .map(|cors| http_api_cors(cors, &config.functions));

    if let crate::schema::EgressConfig::Functions(keys) = &config.egress {
        for (i, k) in keys.iter().enumerate() {
            if !config.functions.iter().any(|f| f.key.value == k.value) {
                c.error(
                    &k.span,
                    &format!("custom.stratus.egress[{i}]"),
                    format!("no function `{}` under `functions:`", k.value),
                );
            }
        }
    }

    let mut functions = BTreeMap::new();
    let mut deployed: BTreeMap<String, String> = BTreeMap::new();
    for f in config.functions {
        let key = f.key.value.clone();
        let path = format!("functions.{key}");
        let (name, name_span, name_path) = match &f.name {
            Some(n) => (n.value.clone(), n.span.clone(), format!("{path}.name")),
            None => (
                format!("{}-{stage}-{key}", config.service.value),
                f.key.span.clone(),
                path.clone(),
            ),
        };
        if name.len() > 64 {
            c.error(
                &name_span,
                &name_path,
                format!(
                    "the deployed function name `{name}` has {} characters; Lambda allows at most 64 (set a shorter `name:`)",
                    name.len()
                ),
            );
        } else if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.error(
                &name_span,
                &name_path,
                format!("the deployed function name `{name}` may contain only letters, digits, `-` and `_`"),
            );
        }
        if let Some(other) = deployed.insert(name.clone(), key.clone()) {
            c.error(
                &name_span,
                &name_path,
                format!("the deployed function name `{name}` is also used by `functions.{other}`"),
            );
        }

        let mut environment = provider.environment.clone();
        if let Some(env) = &f.environment {
            environment.extend(env.value.clone());
        }
        let env_bytes =
            stratus_rules::env_bytes(environment.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if env_bytes > MAX_ENVIRONMENT_BYTES {
            let (span, env_path) = match (&f.environment, &p.environment) {
                (Some(e), _) => (e.span.clone(), format!("{path}.environment")),
                (None, Some(e)) => (e.span.clone(), "provider.environment".to_string()),
                (None, None) => (f.key.span.clone(), path.clone()),
            };
            c.error(
                &span,
                &env_path,
                format!(
                    "the environment variables of `{key}` take {env_bytes} bytes (names and values); Lambda allows {MAX_ENVIRONMENT_BYTES} (4 KB) in total"
                ),
            );
        }
        let mut tags = provider.tags.clone();
        tags.extend(f.tags.clone());
        let mut patterns = package.patterns.clone();
        patterns.extend(f.package.patterns.clone());
        let mut events = f.events;
        for event in &mut events {
            if let Event::HttpApi(route) = event {
                route.cors.clone_from(&http_api_cors);
            }
        }

        let resolved = ResolvedFunction {
            key: key.clone(),
            name,
            handler: f.handler,
            runtime: f.runtime.or(p.runtime).unwrap_or(DEFAULT_RUNTIME),
            memory_size: f.memory_size.unwrap_or(provider.memory_size),
            timeout: f.timeout.unwrap_or(provider.timeout),
            environment,
            events,
            provisioned_concurrency: f.provisioned_concurrency,
            reserved_concurrency: f.reserved_concurrency,
            concurrency_autoscaling: f.concurrency_autoscaling,
            on_error: f.on_error,
            destinations: f.destinations,
            maximum_retry_attempts: f
                .maximum_retry_attempts
                .unwrap_or(DEFAULT_MAXIMUM_RETRY_ATTEMPTS),
            maximum_event_age: f.maximum_event_age.unwrap_or(DEFAULT_MAXIMUM_EVENT_AGE),
            url: f.url,
            package: FunctionPackage {
                patterns,
                individually: f.package.individually.unwrap_or(package.individually),
                artifact: f.package.artifact.or_else(|| package.artifact.clone()),
            },
            layers: f.layers.or_else(|| p.layers.clone()).unwrap_or_default(),
            tags,
            description: f.description,
            architecture: f.architecture.unwrap_or(provider.architecture),
            ephemeral_storage_size: f
                .ephemeral_storage_size
                .unwrap_or(provider.ephemeral_storage_size),
            log_retention_in_days: f.log_retention_in_days.or(provider.log_retention_in_days),
            role: f.role.or_else(|| p.iam_role.clone()),
            kms_key_arn: f.kms_key_arn.or_else(|| p.kms_key_arn.clone()),
            egress: config.egress.allows(&key),
        };
        functions.insert(key, resolved);
    }

    let mut params: BTreeMap<String, Json> = BTreeMap::new();
    for group in ["default", stage] {
        if let Some(values) = config.params.get(group) {
            for (k, v) in values {
                if !v.is_null() {
                    params.insert(k.clone(), v.clone());
                }
            }
        }
    }
    for (k, v) in &opts.params {
        params.insert(k.clone(), Json::String(v.clone()));
    }

    Service {
        service: config.service.value,
        framework_version: config.framework_version,
        stage: stage.to_string(),
        region,
        iam_statements: p.iam_statements.clone(),
        provider,
        functions,
        package,
        plugins: config.plugins.into_iter().map(|p| p.value).collect(),
        params,
        custom: config.custom.unwrap_or(Json::Null),
        resources: config.resources.unwrap_or(Json::Null),
    }
}

/// `provider.httpApi.cors` with its defaults applied. Unless written, the
/// allowed methods are `OPTIONS` and those of every `httpApi` route of the
/// service in file order, or only `*` when a route takes any method (as the
/// Serverless Framework computes them).
fn http_api_cors(cors: &CorsSettings, functions: &[FunctionConfig]) -> ApiCors {
    let allowed_methods = cors.allowed_methods.clone().unwrap_or_else(|| {
        let mut methods = vec!["OPTIONS".to_string()];
        let routes = functions
            .iter()
            .flat_map(|f| &f.events)
            .filter_map(|e| match e {
                Event::HttpApi(route) => Some(route),
                _ => None,
            });
        for route in routes {
            if route.method == "*" {
                return vec!["*".to_string()];
            }
            if !methods.contains(&route.method) {
                methods.push(route.method.clone());
            }
        }
        methods
    });
    ApiCors {
        allowed_origins: cors.allowed_origins.clone(),
        allowed_headers: cors.allowed_headers.clone(),
        allowed_methods,
        allow_credentials: cors.allow_credentials,
        exposed_response_headers: cors.exposed_response_headers.clone(),
        max_age: cors.max_age,
    }
}

/// Lambda's limit on the environment variables of one function, names and
/// values together.
pub const MAX_ENVIRONMENT_BYTES: usize = stratus_rules::MAX_ENV_BYTES;
