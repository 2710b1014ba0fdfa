//! The typed schema of `serverless.yml` (Serverless Framework v3, AWS provider),
//! read from the resolved tree with every field checked. Each field documents
//! the syntax it accepts. Problems are collected (all of them, with positions)
//! rather than stopping at the first.
//!
//! Keys the schema does not know are warnings, as with the Framework's
//! `configValidationMode: warn`; errors with `configValidationMode: error` or
//! [`crate::Options::strict`]; silent with `configValidationMode: off`. Valid
//! Serverless settings that Stratus does not use (`provider.vpc`,
//! `functions.*.tracing`, …) are notes.

mod events;
mod http_api;
pub(crate) mod reader;

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::model::{ApiCors, Architecture, Destination, Destinations, Event, FunctionUrl, Runtime};
use crate::spanned::{Node, Span, Value};

use reader::{
    boolean, is_intrinsic, non_empty_string, string, string_list, string_map, string_or_list, text,
    whole, Checker, Fields, Range, UnknownKeys,
};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

/// `configValidationMode:` — what unknown keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationMode {
    /// `warn` (default): warnings.
    #[default]
    Warn,
    /// `error`: errors.
    Error,
    /// `off`: not reported.
    Off,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `service: my-service` — a letter, then letters, digits and hyphens. Required.
    pub service: Located<String>,
    /// `frameworkVersion: '3'` — kept as written.
    pub framework_version: Option<String>,
    /// `configValidationMode: warn | error | off`.
    pub validation_mode: ValidationMode,
    /// `provider:` — required, with `name: aws`.
    pub provider: ProviderConfig,
    /// `functions:` — a map from function key to its settings, in file order.
    pub functions: Vec<FunctionConfig>,
    /// `package:` — service-wide packaging.
    pub package: PackageConfig,
    /// `custom:` — anything; carried as JSON.
    pub custom: Option<Json>,
    /// `resources:` — CloudFormation; carried as JSON, not deployed.
    pub resources: Option<Json>,
    /// `plugins: [name, …]` or `plugins: {localPath, modules: [name, …]}`.
    pub plugins: Vec<Located<String>>,
    /// `params: {default: {key: value}, <stage>: {key: value}}` — groups of
    /// stages other than the one loaded hold their values as written
    /// (unresolved).
    pub params: BTreeMap<String, BTreeMap<String, Json>>,
}

/// `provider:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderConfig {
    /// Where `provider:` is.
    pub span: Option<Span>,
    /// `name: aws` — the only provider Stratus speaks.
    pub name: String,
    /// `runtime: nodejs20.x` — one of nodejs18.x, nodejs20.x, nodejs22.x,
    /// python3.9–python3.13, provided, provided.al2, provided.al2023.
    pub runtime: Option<Runtime>,
    /// `stage: dev` — letters, digits and hyphens. Default `dev`.
    pub stage: Option<String>,
    /// `region: eu-west-1`. Default `us-east-1`.
    pub region: Option<Located<String>>,
    /// `memorySize: 512` — MB, 128–10240. Default 1024.
    pub memory_size: Option<u32>,
    /// `timeout: 10` — seconds, 1–900. Default 6.
    pub timeout: Option<u32>,
    /// `environment: {NAME: value}` — names `[A-Za-z][A-Za-z0-9_]*`, values
    /// strings (numbers and booleans become text).
    pub environment: Option<Located<BTreeMap<String, String>>>,
    /// `iam: {role: {statements: [...]}}` followed by the older
    /// `iamRoleStatements: [...]`; each statement `{Effect, Action, Resource}`.
    pub iam_statements: Vec<Json>,
    /// `logRetentionInDays: 14` — one of CloudWatch's retention periods.
    pub log_retention_in_days: Option<u32>,
    /// `architecture: x86_64 | arm64`.
    pub architecture: Option<Architecture>,
    /// `ephemeralStorageSize: 1024` — MB of `/tmp`, 512–10240. Default 512.
    pub ephemeral_storage_size: Option<u32>,
    /// `tags: {key: value}`.
    pub tags: BTreeMap<String, String>,
    /// `layers: [arn, …]` — layer ARNs for every function.
    pub layers: Option<Vec<Json>>,
    /// `httpApi: {cors: …}` — the service's HTTP API (its `httpApi` events).
    pub http_api: HttpApiConfig,
}

/// `provider.httpApi:` — settings of the service's HTTP API. Stratus uses
/// `cors`; `id`, `name`, `payload`, `disableDefaultEndpoint`, `metrics`,
/// `useProviderTags` and `authorizers` are accepted and not used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpApiConfig {
    /// `cors: true`, or a map of CORS settings for every route of the API;
    /// `false` or absent: no CORS.
    pub cors: Option<CorsSettings>,
}

/// `cors:` of `provider.httpApi` or of a function's `url` — `true`, or
/// `{allowedOrigins, allowedHeaders, allowedMethods, allowCredentials,
/// exposedResponseHeaders, maxAge}`. Each list is a list of strings or one
/// string. Keys left out take the values of `cors: true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    /// `allowedOrigins: [https://app.example.com, 'https://*.example.com']` —
    /// default `['*']`.
    pub allowed_origins: Vec<String>,
    /// `allowedHeaders: [Content-Type, Authorization]` — default the
    /// Serverless Framework's (`Content-Type`, `X-Amz-Date`, …).
    pub allowed_headers: Vec<String>,
    /// `allowedMethods: [GET, POST]`, upper-cased — `None` when not written (an
    /// HTTP API computes it when lowering; a function URL allows `*`).
    pub allowed_methods: Option<Vec<String>>,
    /// `allowCredentials: true` — default false.
    pub allow_credentials: bool,
    /// `exposedResponseHeaders: [x-total-count]` — default none.
    pub exposed_response_headers: Vec<String>,
    /// `maxAge: 600` — seconds browsers may cache a preflight answer, 0–86400.
    pub max_age: Option<u32>,
}

impl CorsSettings {
    /// What `cors: true` means, with these allowed headers.
    fn enabled(default_headers: &[&str]) -> Self {
        CorsSettings {
            allowed_origins: vec!["*".into()],
            allowed_headers: default_headers.iter().map(|h| h.to_string()).collect(),
            allowed_methods: None,
            allow_credentials: false,
            exposed_response_headers: Vec::new(),
            max_age: None,
        }
    }
}

/// `cors: true | false | {…}` of an HTTP API or a function URL.
fn cors_settings(
    c: &mut Checker,
    node: &Node,
    path: &str,
    default_headers: &[&str],
) -> Option<CorsSettings> {
    // A bare string `true`/`false` is what a variable such as `${env:CORS}`
    // resolves to.
    let enabled = match &node.value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
        _ => None,
    };
    if let Some(enabled) = enabled {
        return enabled.then(|| CorsSettings::enabled(default_headers));
    }
    let mut f = Fields::new(c, node, path, "true, false or a map of CORS settings")?;
    let mut cors = CorsSettings::enabled(default_headers);
    let mut list = |c: &mut Checker, key: &'static str| {
        let n = f.get(key)?;
        string_or_list(c, n, &f.path_of(key))
    };
    if let Some(v) = list(c, "allowedOrigins") {
        cors.allowed_origins = v;
    }
    if let Some(v) = list(c, "allowedHeaders") {
        cors.allowed_headers = v;
    }
    cors.allowed_methods = list(c, "allowedMethods")
        .map(|methods| methods.iter().map(|m| m.to_ascii_uppercase()).collect());
    if let Some(v) = list(c, "exposedResponseHeaders") {
        cors.exposed_response_headers = v;
    }
    if let Some(n) = f.get("allowCredentials") {
        cors.allow_credentials = boolean(c, n, &f.path_of("allowCredentials")).unwrap_or(false);
    }
    if let Some(n) = f.get("maxAge") {
        cors.max_age = whole(
            c,
            n,
            &f.path_of("maxAge"),
            "a whole number of seconds",
            Range::between(0, 86_400),
        );
    }
    f.finish(c, &[]);
    Some(cors)
}

/// `functions.<key>:`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    /// The key under `functions:` — letters, digits, `-` and `_`.
    pub key: Located<String>,
    /// `handler: handler.hello` — file and export (Node.js, Python) or anything
    /// (`provided*`). Required.
    pub handler: String,
    /// `name: my-fn` — the deployed name. Default `{service}-{stage}-{key}`.
    pub name: Option<Located<String>>,
    /// `runtime: python3.12` — as `provider.runtime`; overrides it.
    pub runtime: Option<Runtime>,
    /// `memorySize: 512` — MB, 128–10240.
    pub memory_size: Option<u32>,
    /// `timeout: 10` — seconds, 1–900.
    pub timeout: Option<u32>,
    /// `environment: {NAME: value}` — merged over `provider.environment`.
    pub environment: Option<Located<BTreeMap<String, String>>>,
    /// `events: [...]` — see the `events` module for each type's syntax.
    pub events: Vec<Event>,
    /// `provisionedConcurrency: 2` — 0 or more; at most `reservedConcurrency` when both are set.
    pub provisioned_concurrency: Option<u32>,
    /// `reservedConcurrency: 10` — 0 or more.
    pub reserved_concurrency: Option<u32>,
    /// `onError: arn:aws:sns:…` — SNS topic or SQS queue ARN (or a CloudFormation reference).
    pub on_error: Option<Json>,
    /// `destinations: {onSuccess: <function or ARN>, onFailure: <…>}`; each also
    /// `{type: function|sns|sqs|eventBus, arn: <ARN or reference>}`.
    pub destinations: Option<Destinations>,
    /// `maximumRetryAttempts: 1` — 0–2. Default 2.
    pub maximum_retry_attempts: Option<u32>,
    /// `maximumEventAge: 3600` — seconds, 60–21600. Default 21600.
    pub maximum_event_age: Option<u32>,
    /// `url: true` or `{authorizer: aws_iam, cors: true | {...}, invokeMode: BUFFERED | RESPONSE_STREAM}`.
    pub url: Option<FunctionUrl>,
    /// `package: {patterns, individually, artifact}` (and the older `include`/`exclude`).
    pub package: PackageConfig,
    /// `layers: [arn, …]` — replaces `provider.layers`.
    pub layers: Option<Vec<Json>>,
    /// `description: text`.
    pub description: Option<String>,
    /// `tags: {key: value}` — merged over `provider.tags`.
    pub tags: BTreeMap<String, String>,
    /// `architecture: x86_64 | arm64`.
    pub architecture: Option<Architecture>,
    /// `ephemeralStorageSize: 1024` — MB, 512–10240.
    pub ephemeral_storage_size: Option<u32>,
    /// `logRetentionInDays: 14`.
    pub log_retention_in_days: Option<u32>,
}

/// `package:` (service or function).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageConfig {
    /// `patterns: ['src/**', '!**/*.test.js']`, after the older
    /// `exclude` (each negated) and `include` entries.
    pub patterns: Vec<String>,
    /// `individually: true`.
    pub individually: Option<bool>,
    /// `artifact: dist/app.zip`.
    pub artifact: Option<String>,
    /// `excludeDevDependencies: false` (service only).
    pub exclude_dev_dependencies: Option<bool>,
}

/// Headers allowed by `cors: true` on an `http` event and by
/// `provider.httpApi.cors: true`, as in the Serverless Framework.
const DEFAULT_CORS_HEADERS: &[&str] = &[
    "Content-Type",
    "X-Amz-Date",
    "Authorization",
    "X-Api-Key",
    "X-Amz-Security-Token",
    "X-Amz-User-Agent",
    "X-Amzn-Trace-Id",
];

/// Valid `logRetentionInDays` values (CloudWatch Logs).
const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Plugins whose job Stratus does itself: a note instead of a warning.
const NATIVE_PLUGINS: &[(&str, &str)] = &[
    (
        "serverless-python-requirements",
        "honoured natively by Stratus: Python requirements are handled when packaging",
    ),
    (
        "serverless-offline",
        "not needed: `stratus dev` serves the service locally",
    ),
];

const TOP_LEVEL_IGNORED: &[&str] = &[
    "app",
    "console",
    "dashboard",
    "deprecationNotificationMode",
    "disabledDeprecations",
    "layers",
    "org",
    "outputs",
    "projectDir",
    "unresolvedVariablesNotificationMode",
    "useDotenv",
    "variablesResolutionMode",
];

const PROVIDER_IGNORED: &[&str] = &[
    "alb",
    "apiGateway",
    "apiName",
    "cfnRole",
    "cloudFront",
    "deploymentBucket",
    "deploymentMethod",
    "deploymentPrefix",
    "disableRollback",
    "ecr",
    "endpointType",
    "eventBridge",
    "kmsKeyArn",
    "lambdaHashingVersion",
    "logDataProtectionPolicy",
    "logs",
    "notificationArns",
    "profile",
    "rollbackConfiguration",
    "runtimeManagement",
    "s3",
    "stackName",
    "stackParameters",
    "stackPolicy",
    "stackTags",
    "tracing",
    "versionFunctions",
    "vpc",
    "websocketsApiName",
    "websocketsApiRouteSelectionExpression",
    "websocketsDescription",
];

const FUNCTION_IGNORED: &[&str] = &[
    "condition",
    "dependsOn",
    "disableLogs",
    "fileSystemConfig",
    "kmsKeyArn",
    "logDataProtectionPolicy",
    "role",
    "runtimeManagement",
    "snapStart",
    "tracing",
    "versionFunction",
    "vpc",
];

/// Reads the resolved tree; `strict` makes unknown keys errors whatever
/// `configValidationMode` says.
pub(crate) fn read(root: &Node, strict: bool) -> (Option<Config>, Checker) {
    let mode = validation_mode(root);
    let unknown = match (strict, mode) {
        (true, _) | (false, Some(ValidationMode::Error)) => UnknownKeys::Error,
        (false, Some(ValidationMode::Off)) => UnknownKeys::Off,
        _ => UnknownKeys::Warn,
    };
    let mut c = Checker::new(unknown);
    let config = read_config(&mut c, root, mode.unwrap_or_default());
    (config, c)
}

fn validation_mode(root: &Node) -> Option<ValidationMode> {
    match root.get("configValidationMode")?.as_str()? {
        "warn" => Some(ValidationMode::Warn),
        "error" => Some(ValidationMode::Error),
        "off" => Some(ValidationMode::Off),
        _ => None,
    }
}

fn read_config(c: &mut Checker, root: &Node, validation_mode: ValidationMode) -> Option<Config> {
    let mut f = Fields::new(
        c,
        root,
        "",
        "a map of top-level keys such as `service`, `provider` and `functions`",
    )?;

    if let Some(n) = f.get("configValidationMode") {
        let ok = matches!(n.as_str(), Some("warn" | "error" | "off"));
        if !ok {
            c.expected(n, "configValidationMode", "`warn`, `error` or `off`");
        }
    }

    let service = match f.get("service") {
        Some(n) => service_name(c, n),
        None => {
            c.error(
                &root.span,
                "service",
                "missing `service` (e.g. `service: my-service`)",
            );
            None
        }
    };
    let framework_version = f
        .get("frameworkVersion")
        .and_then(|n| text(c, n, "frameworkVersion"));
    let provider = match f.get("provider") {
        Some(n) => provider(c, n),
        None => {
            c.error(
                &root.span,
                "provider",
                "missing `provider` (e.g. `provider: {name: aws, runtime: nodejs20.x}`)",
            );
            None
        }
    };
    let functions = f
        .get("functions")
        .map(|n| functions(c, n))
        .unwrap_or_default();
    let package = f
        .get("package")
        .map(|n| package(c, n, "package", true))
        .unwrap_or_default();
    let custom = f.get("custom").map(Node::to_json);
    let resources = f.get("resources").map(Node::to_json);
    let plugins = f.get("plugins").map(|n| plugins(c, n)).unwrap_or_default();
    let params = f.get("params").map(|n| params(c, n)).unwrap_or_default();
    f.finish(c, TOP_LEVEL_IGNORED);

    Some(Config {
        service: service?,
        framework_version,
        validation_mode,
        provider: provider?,
        functions,
        package,
        custom,
        resources,
        plugins,
        params,
    })
}

fn service_name(c: &mut Checker, node: &Node) -> Option<Located<String>> {
    let ok = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|ch| ch.is_ascii_alphabetic())
            && s.len() >= 2
            && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
    };
    match node.as_str() {
        Some(s) if ok(s) => Some(Located {
            value: s.to_string(),
            span: node.span.clone(),
        }),
        _ => {
            c.expected(
                node,
                "service",
                "a service name: a letter, then letters, digits and hyphens",
            );
            None
        }
    }
}

fn provider(c: &mut Checker, node: &Node) -> Option<ProviderConfig> {
    let mut f = Fields::new(
        c,
        node,
        "provider",
        "a map with `name: aws` and the provider settings",
    )?;
    let mut p = ProviderConfig {
        span: Some(node.span.clone()),
        ..ProviderConfig::default()
    };
    let name_ok = match f.get("name") {
        Some(n) => match n.as_str() {
            Some("aws") => true,
            _ => {
                c.expected(
                    n,
                    "provider.name",
                    "`aws` (the only provider Stratus supports)",
                );
                false
            }
        },
        None => {
            c.error(&node.span, "provider.name", "missing `name: aws`");
            false
        }
    };
    p.name = "aws".into();
    p.runtime = f
        .get("runtime")
        .and_then(|n| runtime(c, n, "provider.runtime"));
    p.stage = f.get("stage").and_then(|n| {
        let s = text(c, n, "provider.stage")?;
        if s.is_empty() || !s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') {
            c.expected(
                n,
                "provider.stage",
                "a stage name: letters, digits and hyphens",
            );
            return None;
        }
        Some(s)
    });
    p.region = f.get("region").and_then(|n| {
        let s = string(c, n, "provider.region")?;
        if !stratus_rules::is_region(&s) {
            c.expected(
                n,
                "provider.region",
                "an AWS region name such as `us-east-1`",
            );
            return None;
        }
        Some(Located {
            value: s,
            span: n.span.clone(),
        })
    });
    p.memory_size = f
        .get("memorySize")
        .and_then(|n| memory(c, n, "provider.memorySize"));
    p.timeout = f
        .get("timeout")
        .and_then(|n| timeout(c, n, "provider.timeout"));
    p.environment = f
        .get("environment")
        .and_then(|n| environment(c, n, "provider.environment"));
    if let Some(n) = f.get("iam") {
        p.iam_statements.extend(iam(c, n));
    }
    if let Some(n) = f.get("iamRoleStatements") {
        let path = "provider.iamRoleStatements";
        let entry_span = node
            .as_map()
            .and_then(|es| es.iter().find(|e| e.key == "iamRoleStatements"))
            .map_or_else(|| n.span.clone(), |e| e.key_span.clone());
        c.warn(
            &entry_span,
            path,
            "deprecated: use `provider.iam.role.statements`",
        );
        p.iam_statements.extend(statements(c, n, path));
    }
    p.log_retention_in_days = f
        .get("logRetentionInDays")
        .and_then(|n| log_retention(c, n, "provider.logRetentionInDays"));
    p.architecture = f
        .get("architecture")
        .and_then(|n| architecture(c, n, "provider.architecture"));
    p.ephemeral_storage_size = f
        .get("ephemeralStorageSize")
        .and_then(|n| ephemeral(c, n, "provider.ephemeralStorageSize"));
    p.tags = f
        .get("tags")
        .and_then(|n| string_map(c, n, "provider.tags"))
        .unwrap_or_default();
    p.layers = f
        .get("layers")
        .and_then(|n| layers(c, n, "provider.layers"));
    p.http_api = f
        .get("httpApi")
        .map(|n| http_api::http_api(c, n, "provider.httpApi"))
        .unwrap_or_default();
    f.finish(c, PROVIDER_IGNORED);
    name_ok.then_some(p)
}

fn runtime(c: &mut Checker, node: &Node, path: &str) -> Option<Runtime> {
    match node.as_str().and_then(Runtime::from_id) {
        Some(r) => Some(r),
        None => {
            c.expected(
                node,
                path,
                &format!(
                    "a runtime supported by Stratus ({})",
                    Runtime::supported_list()
                ),
            );
            None
        }
    }
}

fn memory(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    whole(
        c,
        node,
        path,
        "a whole number of megabytes",
        Range::between(128, 10_240),
    )
}

fn timeout(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    whole(
        c,
        node,
        path,
        "a whole number of seconds",
        Range::between(1, 900),
    )
}

fn ephemeral(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    whole(
        c,
        node,
        path,
        "a whole number of megabytes",
        Range::between(512, 10_240),
    )
}

fn architecture(c: &mut Checker, node: &Node, path: &str) -> Option<Architecture> {
    match node.as_str() {
        Some("x86_64") => Some(Architecture::X86_64),
        Some("arm64") => Some(Architecture::Arm64),
        _ => {
            c.expected(node, path, "`x86_64` or `arm64`");
            None
        }
    }
}

fn log_retention(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    let list = LOG_RETENTION_DAYS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!("a CloudWatch retention period in days ({list})");
    let n = match &node.value {
        Value::Int(i) => u32::try_from(*i).ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if LOG_RETENTION_DAYS.contains(&n) => Some(n),
        _ => {
            c.expected(node, path, &what);
            None
        }
    }
}

fn environment(
    c: &mut Checker,
    node: &Node,
    path: &str,
) -> Option<Located<BTreeMap<String, String>>> {
    let Value::Map(entries) = &node.value else {
        c.expected(node, path, "a map of environment variables");
        return None;
    };
    let mut vars = BTreeMap::new();
    for e in entries {
        let p = format!("{path}.{}", e.key);
        if stratus_rules::is_reserved_env_var(&e.key) {
            c.error(
                &e.key_span,
                &p,
                format!("`{}` is reserved by Lambda and cannot be set", e.key),
            );
            continue;
        }
        if !stratus_rules::is_env_name(&e.key) {
            c.error(
                &e.key_span,
                &p,
                format!("invalid environment variable name `{}`: names start with a letter and contain only letters, digits and `_`", e.key),
            );
            continue;
        }
        if is_intrinsic(&e.value) {
            c.warn(
                &e.value.span,
                &p,
                "CloudFormation functions are not evaluated by Stratus; the variable is left out",
            );
            continue;
        }
        if let Some(v) = text(c, &e.value, &p) {
            vars.insert(e.key.clone(), v);
        }
    }
    Some(Located {
        value: vars,
        span: node.span.clone(),
    })
}

fn iam(c: &mut Checker, node: &Node) -> Vec<Json> {
    let Some(mut f) = Fields::new(c, node, "provider.iam", "a map with `role`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(role) = f.get("role") {
        match &role.value {
            Value::String(_) => c.note(
                &role.span,
                "provider.iam.role",
                "an existing role is accepted but not used by Stratus",
            ),
            _ => {
                if let Some(mut rf) = Fields::new(
                    c,
                    role,
                    "provider.iam.role",
                    "a role ARN or a map with `statements`",
                ) {
                    if let Some(s) = rf.get("statements") {
                        out = statements(c, s, "provider.iam.role.statements");
                    }
                    rf.finish(
                        c,
                        &[
                            "managedPolicies",
                            "name",
                            "path",
                            "permissionsBoundary",
                            "tags",
                        ],
                    );
                }
            }
        }
    }
    f.finish(c, &["deploymentRole"]);
    out
}

fn statements(c: &mut Checker, node: &Node, path: &str) -> Vec<Json> {
    let Value::Seq(items) = &node.value else {
        c.expected(node, path, "a list of IAM statements");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(entries) = item.as_map() else {
            c.expected(
                item,
                &p,
                "an IAM statement: a map with `Effect`, `Action` and `Resource`",
            );
            continue;
        };
        let has = |k: &str| entries.iter().any(|e| e.key == k);
        match item.get("Effect").and_then(Node::as_str) {
            Some("Allow" | "Deny") => {}
            Some(_) => {
                if let Some(n) = item.get("Effect") {
                    c.expected(n, &format!("{p}.Effect"), "`Allow` or `Deny`");
                }
                continue;
            }
            None => {
                c.error(&item.span, &p, "missing `Effect: Allow` or `Effect: Deny`");
                continue;
            }
        }
        if !has("Action") && !has("NotAction") {
            c.error(&item.span, &p, "missing `Action` (or `NotAction`)");
            continue;
        }
        if !has("Resource") && !has("NotResource") {
            c.error(&item.span, &p, "missing `Resource` (or `NotResource`)");
            continue;
        }
        out.push(item.to_json());
    }
    out
}

fn layers(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<Json>> {
    let Value::Seq(items) = &node.value else {
        c.expected(node, path, "a list of layer ARNs");
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match &item.value {
            Value::String(s) if s.starts_with("arn:") => out.push(item.to_json()),
            _ if is_intrinsic(item) => out.push(item.to_json()),
            _ => c.expected(item, &format!("{path}[{i}]"), "a layer ARN (arn:aws:lambda:<region>:<account>:layer:<name>:<version>) or a CloudFormation reference"),
        }
    }
    Some(out)
}

fn package(c: &mut Checker, node: &Node, path: &str, service_level: bool) -> PackageConfig {
    let mut out = PackageConfig::default();
    let Some(mut f) = Fields::new(
        c,
        node,
        path,
        "a map with `patterns`, `individually` or `artifact`",
    ) else {
        return out;
    };
    let key_span = |k: &str| {
        node.as_map()
            .and_then(|es| es.iter().find(|e| e.key == k))
            .map(|e| e.key_span.clone())
    };
    if let Some(n) = f.get("exclude") {
        let p = f.path_of("exclude");
        if let Some(span) = key_span("exclude") {
            c.warn(
                &span,
                &p,
                "deprecated: use `patterns` with `!pattern` entries; read as such",
            );
        }
        if let Some(list) = string_list(c, n, &p) {
            out.patterns
                .extend(list.into_iter().map(|s| format!("!{s}")));
        }
    }
    if let Some(n) = f.get("include") {
        let p = f.path_of("include");
        if let Some(span) = key_span("include") {
            c.warn(&span, &p, "deprecated: use `patterns`; read as such");
        }
        if let Some(list) = string_list(c, n, &p) {
            out.patterns.extend(list);
        }
    }
    if let Some(n) = f.get("patterns") {
        if let Some(list) = string_list(c, n, &f.path_of("patterns")) {
            out.patterns.extend(list);
        }
    }
    out.individually = f
        .get("individually")
        .and_then(|n| boolean(c, n, &f.path_of("individually")));
    out.artifact = f
        .get("artifact")
        .and_then(|n| non_empty_string(c, n, &f.path_of("artifact")));
    if service_level {
        out.exclude_dev_dependencies = f
            .get("excludeDevDependencies")
            .and_then(|n| boolean(c, n, &f.path_of("excludeDevDependencies")));
    }
    f.finish(c, &[]);
    out
}

fn plugins(c: &mut Checker, node: &Node) -> Vec<Located<String>> {
    let list = match &node.value {
        Value::Seq(_) => Some((node, "plugins".to_string())),
        Value::Map(_) => {
            let mut f = match Fields::new(c, node, "plugins", "a list of plugin names") {
                Some(f) => f,
                None => return Vec::new(),
            };
            let modules = f.get("modules").map(|n| (n, "plugins.modules".to_string()));
            f.get("localPath");
            f.finish(c, &[]);
            modules
        }
        _ => {
            c.expected(node, "plugins", "a list of plugin names");
            None
        }
    };
    let Some((list, path)) = list else {
        return Vec::new();
    };
    let Value::Seq(items) = &list.value else {
        c.expected(list, &path, "a list of plugin names");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(name) = string(c, item, &p) else {
            continue;
        };
        match NATIVE_PLUGINS.iter().find(|(n, _)| *n == name) {
            Some((_, why)) => c.note(&item.span, &p, format!("plugin `{name}` is not run; {why}")),
            None => c.warn(
                &item.span,
                &p,
                format!("plugin `{name}` is not run by Stratus; settings and behaviour it adds are ignored"),
            ),
        }
        out.push(Located {
            value: name,
            span: item.span.clone(),
        });
    }
    out
}

fn params(c: &mut Checker, node: &Node) -> BTreeMap<String, BTreeMap<String, Json>> {
    let mut out = BTreeMap::new();
    let Value::Map(groups) = &node.value else {
        c.expected(
            node,
            "params",
            "a map from stage (or `default`) to parameters",
        );
        return out;
    };
    for g in groups {
        let p = format!("params.{}", g.key);
        match &g.value.value {
            Value::Null => {}
            Value::Map(entries) => {
                let values = entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect();
                out.insert(g.key.clone(), values);
            }
            _ => c.expected(&g.value, &p, "a map of parameters"),
        }
    }
    out
}

fn functions(c: &mut Checker, node: &Node) -> Vec<FunctionConfig> {
    let Value::Map(entries) = &node.value else {
        c.expected(
            node,
            "functions",
            "a map from function name to its settings",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let path = format!("functions.{}", e.key);
        let valid_key = !e.key.is_empty()
            && e.key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !valid_key {
            c.error(
                &e.key_span,
                &path,
                format!(
                    "invalid function name `{}`: use letters, digits, `-` and `_`",
                    e.key
                ),
            );
            continue;
        }
        let key = Located {
            value: e.key.clone(),
            span: e.key_span.clone(),
        };
        if let Some(f) = function(c, &e.value, &path, key) {
            out.push(f);
        }
    }
    out
}

fn function(
    c: &mut Checker,
    node: &Node,
    path: &str,
    key: Located<String>,
) -> Option<FunctionConfig> {
    let mut f = Fields::new(
        c,
        node,
        path,
        "a map of function settings with at least `handler`",
    )?;
    let p = |k: &str| format!("{path}.{k}");
    let image = f.get("image");
    if let Some(n) = image {
        c.error(
            &n.span,
            &p("image"),
            "container images are not supported by Stratus; use `handler` and a runtime",
        );
    }
    let handler = match f.get("handler") {
        Some(n) => non_empty_string(c, n, &p("handler")).and_then(|h| {
            if h.chars().any(char::is_whitespace) {
                c.expected(
                    n,
                    &p("handler"),
                    "a handler without spaces, such as `handler.hello`",
                );
                None
            } else {
                Some(h)
            }
        }),
        None => {
            if image.is_none() {
                c.error(
                    &node.span,
                    &p("handler"),
                    "missing `handler` (e.g. `handler: handler.hello`)",
                );
            }
            None
        }
    };
    let name = f.get("name").and_then(|n| {
        non_empty_string(c, n, &p("name")).map(|value| Located {
            value,
            span: n.span.clone(),
        })
    });
    let runtime_v = f.get("runtime").and_then(|n| runtime(c, n, &p("runtime")));
    let memory_size = f
        .get("memorySize")
        .and_then(|n| memory(c, n, &p("memorySize")));
    let timeout_v = f.get("timeout").and_then(|n| timeout(c, n, &p("timeout")));
    let environment_v = f
        .get("environment")
        .and_then(|n| environment(c, n, &p("environment")));
    let events_v = match f.get("events") {
        Some(n) => match &n.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| events::event(c, item, &format!("{path}.events[{i}]")))
                .collect(),
            _ => {
                c.expected(n, &p("events"), "a list of events");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let provisioned = f.get("provisionedConcurrency").map(|n| {
        (
            whole(
                c,
                n,
                &p("provisionedConcurrency"),
                "a whole number of environments",
                Range::at_least(0),
            ),
            n,
        )
    });
    let reserved = f.get("reservedConcurrency").and_then(|n| {
        whole(
            c,
            n,
            &p("reservedConcurrency"),
            "a whole number of concurrent executions",
            Range::at_least(0),
        )
    });
    if let (Some((Some(pc), pn)), Some(rc)) = (provisioned, reserved) {
        if pc > rc {
            c.error(
                &pn.span,
                &p("provisionedConcurrency"),
                format!("provisioned concurrency ({pc}) cannot exceed reserved concurrency ({rc})"),
            );
        }
    }
    let on_error = f.get("onError").and_then(|n| match &n.value {
        Value::String(s) if s.starts_with("arn:") => Some(n.to_json()),
        _ if is_intrinsic(n) => Some(n.to_json()),
        _ => {
            c.expected(
                n,
                &p("onError"),
                "an SNS topic or SQS queue ARN (arn:aws:sns:… or arn:aws:sqs:…)",
            );
            None
        }
    });
    let destinations_v = f
        .get("destinations")
        .and_then(|n| destinations(c, n, &p("destinations")));
    let retries = f.get("maximumRetryAttempts").and_then(|n| {
        whole(
            c,
            n,
            &p("maximumRetryAttempts"),
            "a whole number of retries",
            Range::between(0, 2),
        )
    });
    let age = f.get("maximumEventAge").and_then(|n| {
        whole(
            c,
            n,
            &p("maximumEventAge"),
            "a whole number of seconds",
            Range::between(60, 21_600),
        )
    });
    let url_v = f.get("url").and_then(|n| url(c, n, &p("url")));
    let package_v = f
        .get("package")
        .map(|n| package(c, n, &p("package"), false))
        .unwrap_or_default();
    let layers_v = f.get("layers").and_then(|n| layers(c, n, &p("layers")));
    let description = f
        .get("description")
        .and_then(|n| text(c, n, &p("description")));
    let tags = f
        .get("tags")
        .and_then(|n| string_map(c, n, &p("tags")))
        .unwrap_or_default();
    let architecture_v = f
        .get("architecture")
        .and_then(|n| architecture(c, n, &p("architecture")));
    let ephemeral_v = f
        .get("ephemeralStorageSize")
        .and_then(|n| ephemeral(c, n, &p("ephemeralStorageSize")));
    let retention = f
        .get("logRetentionInDays")
        .and_then(|n| log_retention(c, n, &p("logRetentionInDays")));
    f.finish(c, FUNCTION_IGNORED);

    Some(FunctionConfig {
        key,
        handler: handler?,
        name,
        runtime: runtime_v,
        memory_size,
        timeout: timeout_v,
        environment: environment_v,
        events: events_v,
        provisioned_concurrency: provisioned.and_then(|(v, _)| v),
        reserved_concurrency: reserved,
        on_error,
        destinations: destinations_v,
        maximum_retry_attempts: retries,
        maximum_event_age: age,
        url: url_v,
        package: package_v,
        layers: layers_v,
        description,
        tags,
        architecture: architecture_v,
        ephemeral_storage_size: ephemeral_v,
        log_retention_in_days: retention,
    })
}

fn destinations(c: &mut Checker, node: &Node, path: &str) -> Option<Destinations> {
    let mut f = Fields::new(c, node, path, "a map with `onSuccess` and/or `onFailure`")?;
    let on_success = f
        .get("onSuccess")
        .and_then(|n| destination(c, n, &f.path_of("onSuccess")));
    let on_failure = f
        .get("onFailure")
        .and_then(|n| destination(c, n, &f.path_of("onFailure")));
    f.finish(c, &[]);
    Some(Destinations {
        on_success,
        on_failure,
    })
}

fn destination(c: &mut Checker, node: &Node, path: &str) -> Option<Destination> {
    if let Value::String(s) = &node.value {
        return Some(if s.starts_with("arn:") {
            Destination::Arn(s.clone())
        } else {
            Destination::Function(s.clone())
        });
    }
    let mut f = Fields::new(
        c,
        node,
        path,
        "a function name, an ARN, or a map with `type` and `arn`",
    )?;
    let kind = f.get("type").and_then(|n| {
        let p = f.path_of("type");
        match n.as_str() {
            Some(k @ ("function" | "sns" | "sqs" | "eventBus")) => Some(k.to_string()),
            _ => {
                c.expected(n, &p, "`function`, `sns`, `sqs` or `eventBus`");
                None
            }
        }
    });
    let arn = match f.get("arn") {
        Some(n) => Some(n),
        None => {
            c.error(&node.span, path, "missing `arn`");
            None
        }
    };
    f.finish(c, &[]);
    let (kind, arn) = (kind?, arn?);
    match &arn.value {
        Value::String(s) if s.starts_with("arn:") => Some(Destination::Arn(s.clone())),
        _ if is_intrinsic(arn) => Some(Destination::Reference {
            kind,
            arn: arn.to_json(),
        }),
        _ => {
            c.expected(
                arn,
                &format!("{path}.arn"),
                "an ARN or a CloudFormation reference",
            );
            None
        }
    }
}

fn url(c: &mut Checker, node: &Node, path: &str) -> Option<FunctionUrl> {
    let mut url = FunctionUrl {
        auth_type: "NONE".into(),
        invoke_mode: "BUFFERED".into(),
        cors: None,
    };
    if let Value::Bool(enabled) = node.value {
        return enabled.then_some(url);
    }
    let mut f = Fields::new(
        c,
        node,
        path,
        "true, false or a map with `authorizer`, `cors` and `invokeMode`",
    )?;
    if let Some(n) = f.get("authorizer") {
        match n.as_str() {
            Some("aws_iam") => url.auth_type = "AWS_IAM".into(),
            Some("none") => {}
            _ => c.expected(n, &f.path_of("authorizer"), "`aws_iam`"),
        }
    }
    if let Some(n) = f.get("invokeMode") {
        match n.as_str() {
            Some(m @ ("BUFFERED" | "RESPONSE_STREAM")) => url.invoke_mode = m.to_string(),
            _ => c.expected(
                n,
                &f.path_of("invokeMode"),
                "`BUFFERED` or `RESPONSE_STREAM`",
            ),
        }
    }
    if let Some(n) = f.get("cors") {
        url.cors = url_cors(c, n, &f.path_of("cors"));
    }
    f.finish(c, &[]);
    Some(url)
}

/// Headers a function URL allows with `cors: true`, as in the Serverless Framework.
const URL_CORS_HEADERS: &[&str] = &[
    "Content-Type",
    "X-Amz-Date",
    "Authorization",
    "X-Api-Key",
    "X-Amz-Security-Token",
];

fn url_cors(c: &mut Checker, node: &Node, path: &str) -> Option<ApiCors> {
    let cors = cors_settings(c, node, path, URL_CORS_HEADERS)?;
    Some(ApiCors {
        allowed_origins: cors.allowed_origins,
        allowed_headers: cors.allowed_headers,
        allowed_methods: cors.allowed_methods.unwrap_or_else(|| vec!["*".into()]),
        allow_credentials: cors.allow_credentials,
        exposed_response_headers: cors.exposed_response_headers,
        max_age: cors.max_age,
    })
}
