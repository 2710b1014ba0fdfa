//! `provider:` — `name: aws` and the provider-wide settings: runtime, stage,
//! region, memory, timeout, environment, IAM statements, log retention,
//! architecture, `/tmp` size, tags, layers, and `httpApi` (read in
//! `http_api`). Settings of the Framework that Stratus does not use are
//! accepted with a note.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::spanned::{Node, Span, Value};
use crate::types::{Architecture, Runtime};

use super::http_api::{self, HttpApiConfig};
use super::reader::{string, string_map, text, Checker, Fields};
use super::shared::{
    architecture, environment, ephemeral, layers, log_retention, memory, runtime, timeout, Located,
};

/// `provider:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderConfig {
    /// Where `provider:` is.
    pub span: Option<Span>,
    /// `name: aws` — the only provider Stratus speaks.
    pub name: String,
    /// `runtime: nodejs20.x` — one of nodejs18.x, nodejs20.x, nodejs22.x,
    /// python3.9–python3.13, ruby3.2–ruby3.4, java17, java21, java25, provided,
    /// provided.al2, provided.al2023.
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
    /// `iam: {role: MyRole}` — a role for every function: a logical id of an
    /// `AWS::IAM::Role` in `resources`, or a role ARN, as written.
    pub iam_role: Option<Json>,
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
    /// `kmsKeyArn: arn:aws:kms:…:key/…` — shown as each function's `KMSKeyArn`
    /// (Stratus seals environments with its own keys whatever it names).
    pub kms_key_arn: Option<String>,
}

/// Settings of the Serverless Framework's `provider:` that Stratus accepts
/// and does not use (a note each).
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
    "websocketsApiName",
    "websocketsApiRouteSelectionExpression",
    "websocketsDescription",
];

pub(super) fn provider(c: &mut Checker, node: &Node) -> Option<ProviderConfig> {
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
        let (statements, role) = iam(c, n);
        p.iam_statements.extend(statements);
        p.iam_role = role;
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
    p.kms_key_arn = f
        .get("kmsKeyArn")
        .and_then(|n| super::function::kms_key_arn(c, n, "provider.kmsKeyArn"));
    p.http_api = f
        .get("httpApi")
        .map(|n| http_api::http_api(c, n, "provider.httpApi"))
        .unwrap_or_default();
    if let Some(span) = f.get("vpc").and(f.key_span("vpc")) {
        c.note(&span, "provider.vpc", super::egress::VPC_NOTE);
    }
    f.finish(c, PROVIDER_IGNORED);
    name_ok.then_some(p)
}

/// `provider.iam`: the role's statements, or a role named by logical id or ARN.
fn iam(c: &mut Checker, node: &Node) -> (Vec<Json>, Option<Json>) {
    let Some(mut f) = Fields::new(c, node, "provider.iam", "a map with `role`") else {
        return (Vec::new(), None);
    };
    let mut out = Vec::new();
    let mut named = None;
    if let Some(role) = f.get("role") {
        match &role.value {
            // Resolved at deploy: a role in `resources` gives its inline policies;
            // any other role is one Stratus cannot see (the deployment says so).
            Value::String(_) => named = Some(role.to_json()),
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
                    if let Some(m) = rf.get("managedPolicies") {
                        c.note(
                            &m.span,
                            "provider.iam.role.managedPolicies",
                            "Stratus cannot resolve managed policies: they are not part of the functions' policy (copy the statements you need into `statements`)",
                        );
                    }
                    rf.finish(c, &["name", "path", "permissionsBoundary", "tags"]);
                }
            }
        }
    }
    f.finish(c, &["deploymentRole"]);
    (out, named)
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
