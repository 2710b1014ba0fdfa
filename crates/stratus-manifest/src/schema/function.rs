//! `functions.<name>:` — one function's settings: handler, deployed name,
//! runtime, memory, timeout, environment, `events` (each read in `events`),
//! concurrency, asynchronous invocation (`onError`, `destinations`, retries,
//! event age), `url`, `package`, layers, tags, architecture, `/tmp` size and
//! log retention. Each overrides or merges over its `provider:` counterpart
//! when lowered.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::spanned::{Node, Value};
use crate::types::{ApiCors, Architecture, Destination, Destinations, Event, FunctionUrl, Runtime};

use super::autoscaling::{concurrency_autoscaling, ConcurrencyAutoscaling};
use super::cors::cors_settings;
use super::events;
use super::package::{package, PackageConfig};
use super::reader::{
    is_intrinsic, non_empty_string, string_map, text, whole, Checker, Fields, Range,
};
use super::shared::{
    architecture, environment, ephemeral, layers, log_retention, memory, runtime, timeout, Located,
};

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
    /// `concurrencyAutoscaling: true | {...}` — see the `autoscaling` module; `None`
    /// when absent, disabled, or without `provisionedConcurrency` above 0.
    pub concurrency_autoscaling: Option<ConcurrencyAutoscaling>,
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
    /// `role: MyRole` (a logical id in `resources`), a role ARN, or a CloudFormation
    /// reference (`Fn::GetAtt: [MyRole, Arn]`), as written.
    pub role: Option<Json>,
    /// `kmsKeyArn: arn:aws:kms:…:key/…` — replaces `provider.kmsKeyArn`.
    pub kms_key_arn: Option<String>,
}

/// Function settings of the Serverless Framework that Stratus accepts and
/// does not use (a note each).
const FUNCTION_IGNORED: &[&str] = &[
    "condition",
    "dependsOn",
    "disableLogs",
    "fileSystemConfig",
    "logDataProtectionPolicy",
    "runtimeManagement",
    "snapStart",
    "tracing",
    "versionFunction",
];

pub(super) fn functions(c: &mut Checker, node: &Node) -> Vec<FunctionConfig> {
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
    let autoscaling = f.get("concurrencyAutoscaling").and_then(|n| {
        let a = concurrency_autoscaling(c, n, &p("concurrencyAutoscaling"))?;
        if !matches!(provisioned, Some((Some(pc), _)) if pc > 0) {
            c.warn(
                &n.span,
                &p("concurrencyAutoscaling"),
                "has no effect without `provisionedConcurrency` above 0 (as with the serverless-provisioned-concurrency-autoscaling plugin)",
            );
            return None;
        }
        Some(a)
    });
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
    let role = f.get("role").map(Node::to_json);
    let kms = f
        .get("kmsKeyArn")
        .and_then(|n| kms_key_arn(c, n, &p("kmsKeyArn")));
    if let Some(span) = f.get("vpc").and(f.key_span("vpc")) {
        c.note(&span, &p("vpc"), super::egress::VPC_NOTE);
    }
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
        concurrency_autoscaling: autoscaling,
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
        role,
        kms_key_arn: kms,
    })
}

/// `kmsKeyArn`: an ARN as text. A CloudFormation reference (`!GetAtt Key.Arn`)
/// cannot be resolved here: it is noted and ignored, as the key is not used.
pub(super) fn kms_key_arn(c: &mut Checker, node: &Node, path: &str) -> Option<String> {
    if let Value::Map(_) = &node.value {
        c.warn(
            &node.span,
            path,
            "a CloudFormation reference is not resolved by Stratus and is ignored (the key is not used to encrypt)",
        );
        return None;
    }
    let arn = text(c, node, path)?;
    if !arn.starts_with("arn:") {
        c.expected(
            node,
            path,
            "a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)",
        );
        return None;
    }
    Some(arn)
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
