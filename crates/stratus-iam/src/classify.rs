//! Which IAM action, on which resource, an HTTP request to the Stratus API listener
//! is: every route of the Lambda management and Invoke APIs (actions as the Lambda
//! "actions, resources and condition keys" reference names them), the SQS JSON
//! protocol (`X-Amz-Target: AmazonSQS.<Op>`), and Stratus's own `/stratus/v1` control
//! routes (the `stratus:` actions listed in [`STRATUS_ACTIONS`]).
//!
//! Resources are ARNs in this server's region and account, whatever region or
//! account a caller wrote in a function ARN (the server acts on the name only):
//! `arn:aws:lambda:{region}:{account}:function:{name}`, with `:{qualifier}` when the
//! call names a version or alias (as in Lambda, a policy on the unqualified ARN does
//! not cover the qualified one; a call that names a qualifier twice, in the name and
//! in `?Qualifier=`, needs both, and an operation on the function itself given a
//! qualified name needs both ARNs), `arn:aws:sqs:{region}:{account}:{queue}`,
//! `application-autoscaling:<Op>` on `*` for Application Auto Scaling, and for
//! Stratus `arn:aws:stratus:{region}:{account}:service/{service}/{stage}`,
//! `…:blob/{sha256}` and `…:key/{name}`. Actions that act on no single resource
//! (ListFunctions, ListQueues, CreateEventSourceMapping, …) use `*`; so does a request
//! whose resource cannot be read (a malformed name or body): such a request is
//! allowed only by a policy that allows the action on every resource, and then
//! answered with the handler's own validation error.

use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// The parts of an HTTP request that decide its action and resource.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// Method (`HEAD` is treated as `GET`, as the router does).
    pub method: &'a Method,
    /// Path as received (still percent-encoded).
    pub path: &'a str,
    /// Query string without `?`, if any.
    pub query: Option<&'a str>,
    /// Headers (`X-Amz-Target` for SQS).
    pub headers: &'a HeaderMap,
    /// Body: read for CreateFunction's `FunctionName`, the SQS `QueueUrl`/`QueueName`
    /// and the name of a key being created; see [`needs_body`].
    pub body: &'a [u8],
}

/// The region and account of this server's ARNs.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Region (`us-east-1`).
    pub region: &'a str,
    /// Account id (`000000000000`).
    pub account: &'a str,
}

/// Which API family a request belongs to: it decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Lambda's REST-JSON APIs.
    Lambda,
    /// The SQS JSON protocol.
    Sqs,
    /// The CloudWatch Logs JSON 1.1 protocol.
    Logs,
    /// `/stratus/v1` (answers errors in the Lambda REST-JSON shape).
    Stratus,
    /// Application Auto Scaling (JSON 1.1, `X-Amz-Target: AnyScaleFrontendService.*`).
    AutoScaling,
}

/// One action on one resource that a request needs allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `lambda:InvokeFunction`, `sqs:SendMessage`, `stratus:Deploy`, …
    pub action: String,
    /// The resource ARN, or `*`.
    pub resource: String,
    /// The API family.
    pub protocol: Protocol,
}

/// A request that is no operation of this listener.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// No route has this method and path (or SQS target). The router answers it
    /// with its own `UnknownOperationException` (404/405); it acts on nothing.
    #[error("no operation {method} {path}")]
    UnknownOperation {
        /// Method.
        method: String,
        /// Path, or the `X-Amz-Target` for SQS.
        path: String,
    },
}

/// Stratus's own actions, each with the resource it applies to.
pub const STRATUS_ACTIONS: &[(&str, &str)] = &[
    ("stratus:GetHealth", "*"),
    ("stratus:GetCluster", "*"),
    (
        "stratus:ForgetNode",
        "arn:aws:stratus:{region}:{account}:node/{id}",
    ),
    (
        "stratus:GetLogs",
        "function ARN (`?function=`/`?group=/aws/lambda/…`), else *",
    ),
    ("stratus:GetMetrics", "*"),
    ("stratus:GetAutoscaling", "*"),
    ("stratus:ListDeadLetters", "*"),
    ("stratus:ListAsyncEvents", "*"),
    ("stratus:GetDashboard", "*"),
    (
        "stratus:UploadCode",
        "arn:aws:stratus:{region}:{account}:blob/{sha256}",
    ),
    (
        "stratus:GetCode",
        "arn:aws:stratus:{region}:{account}:blob/{sha256}",
    ),
    (
        "stratus:GetService",
        "arn:aws:stratus:{region}:{account}:service/{service}/{stage}",
    ),
    (
        "stratus:RemoveService",
        "arn:aws:stratus:{region}:{account}:service/{service}/{stage}",
    ),
    (
        "stratus:Deploy",
        "arn:aws:stratus:{region}:{account}:service/{service}/{stage}",
    ),
    (
        "stratus:ListDeployments",
        "arn:aws:stratus:{region}:{account}:service/{service}/{stage}",
    ),
    (
        "stratus:Rollback",
        "arn:aws:stratus:{region}:{account}:service/{service}/{stage}",
    ),
    ("stratus:ListKeys", "*"),
    (
        "stratus:CreateKey",
        "arn:aws:stratus:{region}:{account}:key/{name}",
    ),
    (
        "stratus:GetKey",
        "arn:aws:stratus:{region}:{account}:key/{name}",
    ),
    (
        "stratus:DeleteKey",
        "arn:aws:stratus:{region}:{account}:key/{name}",
    ),
    (
        "stratus:GetKeyPolicy",
        "arn:aws:stratus:{region}:{account}:key/{name}",
    ),
    (
        "stratus:AttachKeyPolicy",
        "arn:aws:stratus:{region}:{account}:key/{name}",
    ),
    (
        "stratus:DetachKeyPolicy",
        "arn:aws:stratus:{region}:{account}:key/{name}",
    ),
];

/// The SQS operations this listener serves; batch operations are authorized as
/// their single form (`SendMessageBatch` needs `sqs:SendMessage`), as in SQS.
const SQS_OPERATIONS: &[&str] = &[
    "CreateQueue",
    "GetQueueUrl",
    "ListQueues",
    "DeleteQueue",
    "PurgeQueue",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "ListDeadLetterSourceQueues",
    "TagQueue",
    "UntagQueue",
    "ListQueueTags",
    "AddPermission",
    "RemovePermission",
    "StartMessageMoveTask",
    "CancelMessageMoveTask",
    "ListMessageMoveTasks",
];

/// Whether [`classify`] reads the body of this request (so a caller may skip
/// buffering it otherwise, e.g. for a 6 MB Invoke payload).
pub fn needs_body(method: &Method, path: &str) -> bool {
    let segs = segments(path);
    matches!(
        (method.as_str(), segs.as_slice()),
        ("POST", ["2015-03-31", "functions"]) | ("POST", []) | ("POST", ["stratus", "v1", "keys"])
    )
}

/// The action(s) and resource(s) `req` needs allowed. Every route of the API
/// listener is covered; anything else is [`ClassifyError::UnknownOperation`].
pub fn classify(scope: &Scope<'_>, req: &HttpRequest<'_>) -> Result<Vec<Request>, ClassifyError> {
    let segs = segments(req.path);
    let method = if *req.method == Method::HEAD {
        "GET"
    } else {
        req.method.as_str()
    };
    let unknown = || ClassifyError::UnknownOperation {
        method: req.method.to_string(),
        path: req.path.to_string(),
    };
    let query = parse_query(req.query.unwrap_or(""));
    let q = |k: &str| {
        query
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    };
    let lambda = |action: &str, resources: Vec<String>| {
        Ok(resources
            .into_iter()
            .map(|resource| Request {
                action: format!("lambda:{action}"),
                resource,
                protocol: Protocol::Lambda,
            })
            .collect())
    };
    let f = |raw: &str, qualified: bool| function_resources(scope, raw, q("Qualifier"), qualified);
    let star = || vec!["*".to_string()];
    match (method, segs.as_slice()) {
        ("POST", []) => match req
            .headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
        {
            Some(t) if t.starts_with("GraniteServiceVersion20100801.") => {
                cloudwatch(&t["GraniteServiceVersion20100801.".len()..]).ok_or_else(unknown)
            }
            // The query protocol: the action is a form field.
            None if req
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded")) =>
            {
                let action = String::from_utf8_lossy(req.body)
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("Action=").map(str::to_string));
                action.as_deref().and_then(cloudwatch).ok_or_else(unknown)
            }
            _ => sqs(scope, req)
                .or_else(|| logs(scope, req))
                .or_else(|| autoscaling(req))
                .ok_or_else(unknown),
        },
        // Prometheus scrape (open without a signature only with `--metrics-open`).
        ("GET", ["metrics"]) => Ok(vec![Request {
            action: "stratus:GetMetrics".into(),
            resource: "*".into(),
            protocol: Protocol::Stratus,
        }]),
        // The CloudWatch metric API (RPC v2 CBOR); CloudWatch metric reads act on `*`.
        ("POST", ["service", "GraniteServiceVersion20100801", "operation", op]) => {
            cloudwatch(op).ok_or_else(unknown)
        }
        // The web dashboard's page and assets: served without a signature (as the
        // health check is), and named here as what they are.
        ("GET", ["ui"] | ["ui", "assets", _]) => Ok(vec![Request {
            action: "stratus:GetDashboard".into(),
            resource: "*".into(),
            protocol: Protocol::Stratus,
        }]),
        (_, ["stratus", "v1", rest @ ..]) => {
            stratus(scope, method, rest, req, q("function"), q("group")).ok_or_else(unknown)
        }
        ("POST", ["2015-03-31", "functions"]) => {
            let name = json_field(req.body, "FunctionName");
            lambda(
                "CreateFunction",
                name.map_or_else(star, |n| function_resources(scope, &n, None, false)),
            )
        }
        ("GET", ["2015-03-31", "functions"]) => lambda("ListFunctions", star()),
        ("GET", ["2015-03-31", "functions", n]) => lambda("GetFunction", f(n, true)),
        ("DELETE", ["2015-03-31", "functions", n]) => lambda("DeleteFunction", f(n, true)),
        ("PUT", ["2015-03-31", "functions", n, "code"]) => {
            lambda("UpdateFunctionCode", f(n, false))
        }
        ("GET", ["2015-03-31", "functions", n, "configuration"]) => {
            lambda("GetFunctionConfiguration", f(n, true))
        }
        ("PUT", ["2015-03-31", "functions", n, "configuration"]) => {
            lambda("UpdateFunctionConfiguration", f(n, false))
        }
        ("POST", ["2015-03-31", "functions", n, "versions"]) => {
            lambda("PublishVersion", f(n, false))
        }
        ("GET", ["2015-03-31", "functions", n, "versions"]) => {
            lambda("ListVersionsByFunction", f(n, false))
        }
        ("POST", ["2015-03-31", "functions", n, "aliases"]) => lambda("CreateAlias", f(n, false)),
        ("GET", ["2015-03-31", "functions", n, "aliases"]) => lambda("ListAliases", f(n, false)),
        ("GET", ["2015-03-31", "functions", n, "aliases", _]) => lambda("GetAlias", f(n, false)),
        ("PUT", ["2015-03-31", "functions", n, "aliases", _]) => lambda("UpdateAlias", f(n, false)),
        ("DELETE", ["2015-03-31", "functions", n, "aliases", _]) => {
            lambda("DeleteAlias", f(n, false))
        }
        ("POST", ["2015-03-31", "functions", n, "invocations"]) => {
            lambda("InvokeFunction", f(n, true))
        }
        ("PUT", ["2017-10-31" | "2019-09-30", "functions", n, "concurrency"]) => {
            lambda("PutFunctionConcurrency", f(n, false))
        }
        ("GET", ["2017-10-31" | "2019-09-30", "functions", n, "concurrency"]) => {
            lambda("GetFunctionConcurrency", f(n, false))
        }
        ("DELETE", ["2017-10-31" | "2019-09-30", "functions", n, "concurrency"]) => {
            lambda("DeleteFunctionConcurrency", f(n, false))
        }
        ("PUT", ["2019-09-30", "functions", n, "provisioned-concurrency"]) => {
            lambda("PutProvisionedConcurrencyConfig", f(n, true))
        }
        ("GET", ["2019-09-30", "functions", n, "provisioned-concurrency"])
            if q("List").is_some() =>
        {
            lambda("ListProvisionedConcurrencyConfigs", f(n, false))
        }
        ("GET", ["2019-09-30", "functions", n, "provisioned-concurrency"]) => {
            lambda("GetProvisionedConcurrencyConfig", f(n, true))
        }
        ("DELETE", ["2019-09-30", "functions", n, "provisioned-concurrency"]) => {
            lambda("DeleteProvisionedConcurrencyConfig", f(n, true))
        }
        ("GET", ["2016-08-19", "account-settings"]) => lambda("GetAccountSettings", star()),
        ("GET", ["2019-09-25", "functions", n, "event-invoke-config"]) => {
            lambda("GetFunctionEventInvokeConfig", f(n, true))
        }
        ("PUT", ["2019-09-25", "functions", n, "event-invoke-config"]) => {
            lambda("PutFunctionEventInvokeConfig", f(n, true))
        }
        ("POST", ["2019-09-25", "functions", n, "event-invoke-config"]) => {
            lambda("UpdateFunctionEventInvokeConfig", f(n, true))
        }
        ("DELETE", ["2019-09-25", "functions", n, "event-invoke-config"]) => {
            lambda("DeleteFunctionEventInvokeConfig", f(n, true))
        }
        ("GET", ["2019-09-25", "functions", n, "event-invoke-config", "list"]) => {
            lambda("ListFunctionEventInvokeConfigs", f(n, false))
        }
        ("GET", ["2015-03-31", "event-source-mappings"]) => {
            lambda("ListEventSourceMappings", star())
        }
        ("POST", ["2015-03-31", "event-source-mappings"]) => {
            lambda("CreateEventSourceMapping", star())
        }
        (m @ ("GET" | "PUT" | "DELETE"), ["2015-03-31", "event-source-mappings", id]) => {
            let action = match m {
                "GET" => "GetEventSourceMapping",
                "PUT" => "UpdateEventSourceMapping",
                _ => "DeleteEventSourceMapping",
            };
            let resource = decode(id).map_or_else(
                || "*".to_string(),
                |id| {
                    format!(
                        "arn:aws:lambda:{}:{}:event-source-mapping:{id}",
                        scope.region, scope.account
                    )
                },
            );
            lambda(action, vec![resource])
        }
        (m @ ("GET" | "POST" | "DELETE"), ["2017-03-31", "tags", arn]) => {
            let action = match m {
                "GET" => "ListTags",
                "POST" => "TagResource",
                _ => "UntagResource",
            };
            lambda(action, tag_resources(scope, arn))
        }
        _ => Err(unknown()),
    }
}

/// Path segments after the leading `/`, without a single trailing empty one.
fn segments(path: &str) -> Vec<&str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    if segs.last() == Some(&"") {
        segs.pop();
    }
    segs
}

fn decode(seg: &str) -> Option<String> {
    percent_decode_str(seg)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let d = |s: &str| decode(&s.replace('+', " "));
            Some((d(k)?, d(v)?))
        })
        .collect()
}

fn json_field(body: &[u8], key: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}

/// The function named in a path segment (any form Lambda accepts), as ARNs in
/// `scope`: one per qualifier the request mentions — the name's own and, when
/// `qualified`, `?Qualifier=` — or the unqualified ARN when it mentions none. An
/// operation on the function itself (`qualified` false) needs the unqualified ARN,
/// plus any qualified one the name carries. Handlers differ in which qualifier wins
/// when both are given; requiring every one mentioned leaves no way around a policy.
/// `*` when the reference is not valid (the handler then refuses it).
fn function_resources(
    scope: &Scope<'_>,
    raw: &str,
    query_qualifier: Option<&str>,
    qualified: bool,
) -> Vec<String> {
    let star = || vec!["*".to_string()];
    let Some(raw) = decode(raw) else {
        return star();
    };
    let Some((name, own)) = parse_function_ref(&raw) else {
        return star();
    };
    let query = query_qualifier.filter(|q| qualified && !q.is_empty());
    if query.is_some_and(|q| !stratus_rules::is_qualifier(q)) {
        return star();
    }
    let base = format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        scope.region, scope.account
    );
    let mut out = Vec::new();
    if !qualified || (own.is_none() && query.is_none()) {
        out.push(base.clone());
    }
    for q in [own, query].into_iter().flatten() {
        let arn = format!("{base}:{q}");
        if !out.contains(&arn) {
            out.push(arn);
        }
    }
    out
}

/// The FunctionName forms Lambda accepts: `name`, `name:qualifier`,
/// `account:function:name[:qualifier]`, and the full ARN.
fn parse_function_ref(raw: &str) -> Option<(&str, Option<&str>)> {
    if raw.is_empty() || raw.len() > 170 {
        return None;
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, q] => (*name, Some(*q)),
        ["arn", _, "lambda", _region, _account, "function", name] => (*name, None),
        ["arn", _, "lambda", _region, _account, "function", name, q] => (*name, Some(*q)),
        _ => return None,
    };
    let ok =
        stratus_rules::is_function_name(name) && qualifier.is_none_or(stratus_rules::is_qualifier);
    ok.then_some((name, qualifier))
}

/// The ARNs of a tagging call, normalized to `scope`: the function's, plus the
/// qualified one when the ARN carries a qualifier.
fn tag_resources(scope: &Scope<'_>, raw: &str) -> Vec<String> {
    let star = || vec!["*".to_string()];
    let Some(arn) = decode(raw) else {
        return star();
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", n] => (*n, None),
        ["arn", _, "lambda", _, _, "function", n, q] => (*n, Some(*q)),
        _ => return star(),
    };
    if !stratus_rules::is_function_name(name) || !qualifier.is_none_or(stratus_rules::is_qualifier)
    {
        return star();
    }
    let base = format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        scope.region, scope.account
    );
    let mut out = vec![base.clone()];
    out.extend(qualifier.map(|q| format!("{base}:{q}")));
    out
}

/// The CloudWatch metric reads (JSON or RPC v2 CBOR); they act on `*`, as in IAM.
fn cloudwatch(op: &str) -> Option<Vec<Request>> {
    matches!(op, "GetMetricStatistics" | "GetMetricData" | "ListMetrics").then(|| {
        vec![Request {
            action: format!("cloudwatch:{op}"),
            resource: "*".into(),
            protocol: Protocol::Stratus,
        }]
    })
}

fn sqs(scope: &Scope<'_>, req: &HttpRequest<'_>) -> Option<Vec<Request>> {
    let target = req.headers.get("x-amz-target")?.to_str().ok()?;
    let op = target.strip_prefix("AmazonSQS.")?;
    if !SQS_OPERATIONS.contains(&op) {
        return None;
    }
    let action = op.strip_suffix("Batch").unwrap_or(op);
    let queue = match op {
        "ListQueues" => None,
        "CreateQueue" | "GetQueueUrl" => json_field(req.body, "QueueName"),
        _ => json_field(req.body, "QueueUrl").and_then(|u| queue_name_from_url(&u)),
    };
    let resource = match (op, queue) {
        ("ListQueues", _) | (_, None) => "*".to_string(),
        (_, Some(name)) => format!("arn:aws:sqs:{}:{}:{name}", scope.region, scope.account),
    };
    Some(vec![Request {
        action: format!("sqs:{action}"),
        resource,
        protocol: Protocol::Sqs,
    }])
}

/// The `X-Amz-Target` prefix of the CloudWatch Logs API.
pub const LOGS_TARGET_PREFIX: &str = "Logs_20140328.";

/// The CloudWatch Logs operations this listener serves.
const LOGS_OPERATIONS: &[&str] = &[
    "DescribeLogGroups",
    "DescribeLogStreams",
    "GetLogEvents",
    "FilterLogEvents",
];

/// A CloudWatch Logs call: `logs:{Op}` on
/// `arn:aws:logs:{region}:{account}:log-group:{name}` (with `:log-stream:{stream}`
/// for GetLogEvents), or `*` for DescribeLogGroups and when no group can be read.
fn logs(scope: &Scope<'_>, req: &HttpRequest<'_>) -> Option<Vec<Request>> {
    let target = req.headers.get("x-amz-target")?.to_str().ok()?;
    let op = target.strip_prefix(LOGS_TARGET_PREFIX)?;
    if !LOGS_OPERATIONS.contains(&op) {
        return None;
    }
    let group = json_field(req.body, "logGroupName").or_else(|| {
        // An identifier is a name or `arn:aws:logs:…:log-group:NAME[:*]`.
        let id = json_field(req.body, "logGroupIdentifier")?;
        match id.split_once(":log-group:") {
            Some((_, rest)) => Some(rest.strip_suffix(":*").unwrap_or(rest).to_string()),
            None if id.starts_with("arn:") => None,
            None => Some(id),
        }
    });
    let group = group.filter(|g| {
        !g.is_empty()
            && g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/#".contains(&b))
    });
    let resource = match (op, group) {
        ("DescribeLogGroups", _) | (_, None) => "*".to_string(),
        (op, Some(g)) => {
            let arn = format!(
                "arn:aws:logs:{}:{}:log-group:{g}",
                scope.region, scope.account
            );
            match json_field(req.body, "logStreamName") {
                Some(stream) if op == "GetLogEvents" && !stream.contains([':', '*']) => {
                    format!("{arn}:log-stream:{stream}")
                }
                _ => arn,
            }
        }
    };
    Some(vec![Request {
        action: format!("logs:{op}"),
        resource,
        protocol: Protocol::Logs,
    }])
}

/// `X-Amz-Target` prefix of Application Auto Scaling.
pub const AUTOSCALING_TARGET_PREFIX: &str = "AnyScaleFrontendService.";

/// The Application Auto Scaling operations this listener serves.
const AUTOSCALING_OPERATIONS: &[&str] = &[
    "RegisterScalableTarget",
    "DeregisterScalableTarget",
    "PutScalingPolicy",
    "DeleteScalingPolicy",
    "PutScheduledAction",
    "DeleteScheduledAction",
    "DescribeScalableTargets",
    "DescribeScalingPolicies",
    "DescribeScheduledActions",
    "DescribeScalingActivities",
];

/// `application-autoscaling:<Op>` on `*`: AAS's actions name no resource type
/// that a Lambda target could be scoped to.
fn autoscaling(req: &HttpRequest<'_>) -> Option<Vec<Request>> {
    let target = req.headers.get("x-amz-target")?.to_str().ok()?;
    let op = target.strip_prefix(AUTOSCALING_TARGET_PREFIX)?;
    if !AUTOSCALING_OPERATIONS.contains(&op) {
        return None;
    }
    Some(vec![Request {
        action: format!("application-autoscaling:{op}"),
        resource: "*".to_string(),
        protocol: Protocol::AutoScaling,
    }])
}

/// The queue name of a queue URL: the last path segment of `…/{account}/{name}`,
/// read exactly as the queue service reads it.
fn queue_name_from_url(url: &str) -> Option<String> {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let path = match without_query.find("://") {
        Some(i) => {
            let rest = &without_query[i + 3..];
            rest.find('/').map(|j| &rest[j..]).unwrap_or_default()
        }
        None => without_query,
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [.., _account, name] => Some((*name).to_string()),
        _ => None,
    }
}

fn stratus(
    scope: &Scope<'_>,
    method: &str,
    rest: &[&str],
    req: &HttpRequest<'_>,
    function: Option<&str>,
    group: Option<&str>,
) -> Option<Vec<Request>> {
    let arn = |kind: &str, id: &str| {
        format!(
            "arn:aws:stratus:{}:{}:{kind}/{id}",
            scope.region, scope.account
        )
    };
    let service =
        |s: &str, st: &str| Some(arn("service", &format!("{}/{}", decode(s)?, decode(st)?)));
    let (action, resource) = match (method, rest) {
        ("GET", ["health"]) => ("GetHealth", Some("*".to_string())),
        ("GET", ["cluster"]) => ("GetCluster", Some("*".to_string())),
        ("DELETE", ["cluster", "nodes", id]) => ("ForgetNode", decode(id).map(|i| arn("node", &i))),
        ("GET", ["logs"]) => {
            let name = function.or_else(|| group.and_then(|g| g.strip_prefix("/aws/lambda/")));
            (
                "GetLogs",
                Some(name.map_or_else(
                    || "*".to_string(),
                    // Logs belong to the function, whatever qualifier is written.
                    |n| {
                        function_resources(scope, n, None, false)
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| "*".to_string())
                    },
                )),
            )
        }
        ("GET", ["metrics"] | ["metrics", "series"]) => ("GetMetrics", Some("*".to_string())),
        ("GET", ["autoscaling"]) => ("GetAutoscaling", Some("*".to_string())),
        ("GET", ["dead-letters"]) => ("ListDeadLetters", Some("*".to_string())),
        ("GET", ["async"]) => ("ListAsyncEvents", Some("*".to_string())),
        ("GET", ["ui", "overview"]) => ("GetDashboard", Some("*".to_string())),
        ("PUT" | "GET", ["blobs", sha]) => ("UploadCode", decode(sha).map(|s| arn("blob", &s))),
        ("GET", ["code", sha]) => ("GetCode", decode(sha).map(|s| arn("blob", &s))),
        ("GET", ["services", s, st]) => ("GetService", service(s, st)),
        ("DELETE", ["services", s, st]) => ("RemoveService", service(s, st)),
        ("POST", ["services", s, st, "deployments"]) => ("Deploy", service(s, st)),
        ("GET", ["services", s, st, "deployments"]) => ("ListDeployments", service(s, st)),
        ("POST", ["services", s, st, "rollback"]) => ("Rollback", service(s, st)),
        ("GET", ["keys"]) => ("ListKeys", Some("*".to_string())),
        ("POST", ["keys"]) => {
            let name = json_field(req.body, "UserName").or_else(|| json_field(req.body, "Name"));
            (
                "CreateKey",
                Some(name.map_or_else(|| "*".to_string(), |n| arn("key", &n))),
            )
        }
        ("GET", ["keys", k]) => ("GetKey", decode(k).map(|k| arn("key", &k))),
        ("DELETE", ["keys", k]) => ("DeleteKey", decode(k).map(|k| arn("key", &k))),
        ("GET", ["keys", k, "policy" | "policies", ..]) => {
            ("GetKeyPolicy", decode(k).map(|k| arn("key", &k)))
        }
        ("PUT" | "POST", ["keys", k, "policy" | "policies", ..]) => {
            ("AttachKeyPolicy", decode(k).map(|k| arn("key", &k)))
        }
        ("DELETE", ["keys", k, "policy" | "policies", ..]) => {
            ("DetachKeyPolicy", decode(k).map(|k| arn("key", &k)))
        }
        _ => return None,
    };
    Some(vec![Request {
        action: format!("stratus:{action}"),
        resource: resource.unwrap_or_else(|| "*".into()),
        protocol: Protocol::Stratus,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        account: "000000000000",
    };
    const F: &str = "arn:aws:lambda:us-east-1:000000000000:function:hello";

    fn one(
        method: &str,
        uri: &str,
        target: Option<&str>,
        body: &str,
    ) -> Result<(String, String, Protocol), ClassifyError> {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let mut headers = HeaderMap::new();
        if let Some(t) = target {
            headers.insert(
                "x-amz-target",
                http::HeaderValue::from_str(t).unwrap_or(http::HeaderValue::from_static("")),
            );
        }
        let req = HttpRequest {
            method: &method,
            path,
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        let mut all = classify(&SCOPE, &req)?;
        // Several requests (one per qualifier mentioned) share action and protocol;
        // their resources are joined with " + ".
        assert!(!all.is_empty(), "{uri}");
        let first = all.remove(0);
        let mut resources = first.resource;
        for r in all {
            assert_eq!((&r.action, r.protocol), (&first.action, first.protocol));
            resources = format!("{resources} + {}", r.resource);
        }
        Ok((first.action, resources, first.protocol))
    }

    fn check(method: &str, uri: &str, body: &str, action: &str, resource: &str) {
        let (a, r, p) =
            one(method, uri, None, body).unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        assert_eq!(
            (a.as_str(), r.as_str()),
            (action, resource),
            "{method} {uri}"
        );
        let expected =
            if uri.starts_with("/stratus/") || uri == "/metrics" || uri.starts_with("/ui") {
                Protocol::Stratus
            } else {
                Protocol::Lambda
            };
        assert_eq!(p, expected);
    }

    #[test]
    fn autoscaling_targets() {
        for op in AUTOSCALING_OPERATIONS {
            let got = one(
                "POST",
                "/",
                Some(&format!("AnyScaleFrontendService.{op}")),
                "{}",
            );
            assert_eq!(
                got.ok(),
                Some((
                    format!("application-autoscaling:{op}"),
                    "*".to_string(),
                    Protocol::AutoScaling
                ))
            );
        }
        assert!(one(
            "POST",
            "/",
            Some("AnyScaleFrontendService.PutLifecycleHook"),
            "{}"
        )
        .is_err());
        check(
            "GET",
            "/stratus/v1/autoscaling?function=f",
            "",
            "stratus:GetAutoscaling",
            "*",
        );
    }

    #[test]
    fn every_lambda_route() {
        let q = |s: &str| format!("{F}:{s}");
        let cases: Vec<(&str, &str, &str, &str, String)> = vec![
            ("POST", "/2015-03-31/functions", r#"{"FunctionName":"hello"}"#, "lambda:CreateFunction", F.into()),
            ("POST", "/2015-03-31/functions/", r#"{"FunctionName":"arn:aws:lambda:eu-west-1:111111111111:function:hello"}"#, "lambda:CreateFunction", F.into()),
            ("POST", "/2015-03-31/functions", "not json", "lambda:CreateFunction", "*".into()),
            ("GET", "/2015-03-31/functions/", "", "lambda:ListFunctions", "*".into()),
            ("GET", "/2015-03-31/functions", "", "lambda:ListFunctions", "*".into()),
            ("GET", "/2015-03-31/functions/hello", "", "lambda:GetFunction", F.into()),
            ("GET", "/2015-03-31/functions/hello?Qualifier=3", "", "lambda:GetFunction", q("3")),
            ("DELETE", "/2015-03-31/functions/hello:7", "", "lambda:DeleteFunction", q("7")),
            ("GET", "/2015-03-31/functions/hello:1?Qualifier=prod", "", "lambda:GetFunction", format!("{F}:1 + {F}:prod")),
            ("GET", "/2015-03-31/functions/hello:prod?Qualifier=prod", "", "lambda:GetFunction", q("prod")),
            ("PUT", "/2015-03-31/functions/hello:1/code?Qualifier=2", "", "lambda:UpdateFunctionCode", format!("{F} + {F}:1")),
            ("PUT", "/2019-09-30/functions/hello:1/provisioned-concurrency?Qualifier=live", "", "lambda:PutProvisionedConcurrencyConfig", format!("{F}:1 + {F}:live")),
            ("PUT", "/2015-03-31/functions/hello/code", "", "lambda:UpdateFunctionCode", F.into()),
            ("GET", "/2015-03-31/functions/hello/configuration", "", "lambda:GetFunctionConfiguration", F.into()),
            ("GET", "/2015-03-31/functions/hello/configuration?Qualifier=prod", "", "lambda:GetFunctionConfiguration", q("prod")),
            ("PUT", "/2015-03-31/functions/hello/configuration", "", "lambda:UpdateFunctionConfiguration", F.into()),
            ("POST", "/2015-03-31/functions/hello/versions", "", "lambda:PublishVersion", F.into()),
            ("GET", "/2015-03-31/functions/hello/versions", "", "lambda:ListVersionsByFunction", F.into()),
            ("POST", "/2015-03-31/functions/hello/aliases", "", "lambda:CreateAlias", F.into()),
            ("GET", "/2015-03-31/functions/hello/aliases", "", "lambda:ListAliases", F.into()),
            ("GET", "/2015-03-31/functions/hello/aliases/prod", "", "lambda:GetAlias", F.into()),
            ("PUT", "/2015-03-31/functions/hello/aliases/prod", "", "lambda:UpdateAlias", F.into()),
            ("DELETE", "/2015-03-31/functions/hello/aliases/prod", "", "lambda:DeleteAlias", F.into()),
            ("POST", "/2015-03-31/functions/hello/invocations", "", "lambda:InvokeFunction", F.into()),
            ("POST", "/2015-03-31/functions/hello/invocations?Qualifier=prod", "", "lambda:InvokeFunction", q("prod")),
            ("POST", "/2015-03-31/functions/hello:$LATEST/invocations", "", "lambda:InvokeFunction", q("$LATEST")),
            ("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Ahello%3Aprod/invocations", "", "lambda:InvokeFunction", q("prod")),
            ("POST", "/2015-03-31/functions/123456789012%3Afunction%3Ahello/invocations", "", "lambda:InvokeFunction", F.into()),
            ("POST", "/2015-03-31/functions/bad%20name/invocations", "", "lambda:InvokeFunction", "*".into()),
            ("POST", "/2015-03-31/functions/hello/invocations?Qualifier=bad%20q", "", "lambda:InvokeFunction", "*".into()),
            ("PUT", "/2017-10-31/functions/hello/concurrency", "", "lambda:PutFunctionConcurrency", F.into()),
            ("GET", "/2019-09-30/functions/hello/concurrency", "", "lambda:GetFunctionConcurrency", F.into()),
            ("DELETE", "/2017-10-31/functions/hello/concurrency", "", "lambda:DeleteFunctionConcurrency", F.into()),
            ("PUT", "/2019-09-30/functions/hello/provisioned-concurrency?Qualifier=provisioned", "", "lambda:PutProvisionedConcurrencyConfig", q("provisioned")),
            ("GET", "/2019-09-30/functions/hello/provisioned-concurrency?Qualifier=1", "", "lambda:GetProvisionedConcurrencyConfig", q("1")),
            ("GET", "/2019-09-30/functions/hello/provisioned-concurrency?List=ALL", "", "lambda:ListProvisionedConcurrencyConfigs", F.into()),
            ("DELETE", "/2019-09-30/functions/hello/provisioned-concurrency?Qualifier=1", "", "lambda:DeleteProvisionedConcurrencyConfig", q("1")),
            ("GET", "/2016-08-19/account-settings/", "", "lambda:GetAccountSettings", "*".into()),
            ("GET", "/2019-09-25/functions/hello/event-invoke-config", "", "lambda:GetFunctionEventInvokeConfig", F.into()),
            ("PUT", "/2019-09-25/functions/hello/event-invoke-config?Qualifier=2", "", "lambda:PutFunctionEventInvokeConfig", q("2")),
            ("POST", "/2019-09-25/functions/hello/event-invoke-config", "", "lambda:UpdateFunctionEventInvokeConfig", F.into()),
            ("DELETE", "/2019-09-25/functions/hello/event-invoke-config", "", "lambda:DeleteFunctionEventInvokeConfig", F.into()),
            ("GET", "/2019-09-25/functions/hello/event-invoke-config/list", "", "lambda:ListFunctionEventInvokeConfigs", F.into()),
            ("GET", "/2015-03-31/event-source-mappings/", "", "lambda:ListEventSourceMappings", "*".into()),
            ("POST", "/2015-03-31/event-source-mappings", "", "lambda:CreateEventSourceMapping", "*".into()),
            ("GET", "/2015-03-31/event-source-mappings/1b8c-42", "", "lambda:GetEventSourceMapping", "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:1b8c-42".into()),
            ("PUT", "/2015-03-31/event-source-mappings/1b8c-42", "", "lambda:UpdateEventSourceMapping", "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:1b8c-42".into()),
            ("DELETE", "/2015-03-31/event-source-mappings/1b8c-42", "", "lambda:DeleteEventSourceMapping", "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:1b8c-42".into()),
            ("GET", "/2017-03-31/tags/arn:aws:lambda:us-east-1:000000000000:function:hello", "", "lambda:ListTags", F.into()),
            ("POST", "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello%3A2", "", "lambda:TagResource", format!("{F} + {F}:2")),
            ("DELETE", "/2017-03-31/tags/not-an-arn", "", "lambda:UntagResource", "*".into()),
            ("HEAD", "/2015-03-31/functions/hello", "", "lambda:GetFunction", F.into()),
        ];
        for (m, uri, body, action, resource) in cases {
            check(m, uri, body, action, &resource);
        }
    }

    #[test]
    fn every_stratus_route() {
        let svc = "arn:aws:stratus:us-east-1:000000000000:service/shop/dev";
        let blob = "arn:aws:stratus:us-east-1:000000000000:blob/ab12";
        let key = "arn:aws:stratus:us-east-1:000000000000:key/ci";
        let cases = [
            ("GET", "/stratus/v1/health", "", "stratus:GetHealth", "*"),
            ("GET", "/stratus/v1/cluster", "", "stratus:GetCluster", "*"),
            (
                "DELETE",
                "/stratus/v1/cluster/nodes/n%2D3",
                "",
                "stratus:ForgetNode",
                "arn:aws:stratus:us-east-1:000000000000:node/n-3",
            ),
            (
                "GET",
                "/stratus/v1/logs?function=hello",
                "",
                "stratus:GetLogs",
                F,
            ),
            (
                "GET",
                "/stratus/v1/logs?group=%2Faws%2Flambda%2Fhello&limit=5",
                "",
                "stratus:GetLogs",
                F,
            ),
            ("GET", "/stratus/v1/logs", "", "stratus:GetLogs", "*"),
            ("GET", "/stratus/v1/metrics", "", "stratus:GetMetrics", "*"),
            (
                "GET",
                "/stratus/v1/metrics/series",
                "",
                "stratus:GetMetrics",
                "*",
            ),
            ("GET", "/metrics", "", "stratus:GetMetrics", "*"),
            (
                "GET",
                "/stratus/v1/dead-letters",
                "",
                "stratus:ListDeadLetters",
                "*",
            ),
            (
                "GET",
                "/stratus/v1/async",
                "",
                "stratus:ListAsyncEvents",
                "*",
            ),
            (
                "GET",
                "/stratus/v1/ui/overview",
                "",
                "stratus:GetDashboard",
                "*",
            ),
            ("GET", "/ui", "", "stratus:GetDashboard", "*"),
            ("GET", "/ui/assets/app.js", "", "stratus:GetDashboard", "*"),
            (
                "PUT",
                "/stratus/v1/blobs/ab12",
                "",
                "stratus:UploadCode",
                blob,
            ),
            (
                "HEAD",
                "/stratus/v1/blobs/ab12",
                "",
                "stratus:UploadCode",
                blob,
            ),
            ("GET", "/stratus/v1/code/ab12", "", "stratus:GetCode", blob),
            (
                "GET",
                "/stratus/v1/services/shop/dev",
                "",
                "stratus:GetService",
                svc,
            ),
            (
                "DELETE",
                "/stratus/v1/services/shop/dev",
                "",
                "stratus:RemoveService",
                svc,
            ),
            (
                "POST",
                "/stratus/v1/services/shop/dev/deployments",
                "",
                "stratus:Deploy",
                svc,
            ),
            (
                "GET",
                "/stratus/v1/services/shop/dev/deployments",
                "",
                "stratus:ListDeployments",
                svc,
            ),
            (
                "POST",
                "/stratus/v1/services/shop/dev/rollback",
                "",
                "stratus:Rollback",
                svc,
            ),
            ("GET", "/stratus/v1/keys", "", "stratus:ListKeys", "*"),
            (
                "POST",
                "/stratus/v1/keys",
                r#"{"Name":"ci"}"#,
                "stratus:CreateKey",
                key,
            ),
            (
                "DELETE",
                "/stratus/v1/keys/ci",
                "",
                "stratus:DeleteKey",
                key,
            ),
            (
                "PUT",
                "/stratus/v1/keys/ci/policy",
                "",
                "stratus:AttachKeyPolicy",
                key,
            ),
            (
                "DELETE",
                "/stratus/v1/keys/ci/policy",
                "",
                "stratus:DetachKeyPolicy",
                key,
            ),
        ];
        for (m, uri, body, action, resource) in cases {
            check(m, uri, body, action, resource);
        }
        // Every action classify hands out is in the documented list.
        for (_, _, _, action, _) in cases {
            assert!(
                STRATUS_ACTIONS.iter().any(|(a, _)| *a == action),
                "{action}"
            );
        }
    }

    #[test]
    fn cloudwatch_metric_reads() {
        for op in ["GetMetricStatistics", "GetMetricData", "ListMetrics"] {
            let uri = format!("/service/GraniteServiceVersion20100801/operation/{op}");
            let (a, r, p) = one("POST", &uri, None, "").unwrap();
            assert_eq!(
                (a.as_str(), r.as_str(), p),
                (&*format!("cloudwatch:{op}"), "*", Protocol::Stratus)
            );
            let target = format!("GraniteServiceVersion20100801.{op}");
            let (a, _, _) = one("POST", "/", Some(&target), "{}").unwrap();
            assert_eq!(a, format!("cloudwatch:{op}"));
        }
        // The query protocol names the action in the form.
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let form = |body: &'static str| {
            classify(
                &SCOPE,
                &HttpRequest {
                    method: &Method::POST,
                    path: "/",
                    query: None,
                    headers: &headers,
                    body: body.as_bytes(),
                },
            )
        };
        let got = form("Action=ListMetrics&Version=2010-08-01").unwrap();
        assert_eq!(got[0].action, "cloudwatch:ListMetrics");
        assert!(form("Action=PutMetricData&Version=2010-08-01").is_err());
        assert!(form("Version=2010-08-01").is_err());
        let put = "/service/GraniteServiceVersion20100801/operation/PutMetricData";
        assert!(one("POST", put, None, "").is_err());
        assert!(one(
            "POST",
            "/",
            Some("GraniteServiceVersion20100801.PutMetricAlarm"),
            "{}"
        )
        .is_err());
    }

    #[test]
    fn sqs_targets() {
        let jobs = "arn:aws:sqs:us-east-1:000000000000:jobs";
        let url = r#"{"QueueUrl":"http://127.0.0.1:9000/000000000000/jobs"}"#;
        let cases = [
            ("AmazonSQS.SendMessage", url, "sqs:SendMessage", jobs),
            ("AmazonSQS.SendMessageBatch", url, "sqs:SendMessage", jobs),
            ("AmazonSQS.ReceiveMessage", url, "sqs:ReceiveMessage", jobs),
            (
                "AmazonSQS.DeleteMessageBatch",
                url,
                "sqs:DeleteMessage",
                jobs,
            ),
            (
                "AmazonSQS.ChangeMessageVisibilityBatch",
                url,
                "sqs:ChangeMessageVisibility",
                jobs,
            ),
            (
                "AmazonSQS.GetQueueAttributes",
                r#"{"QueueUrl":"jobs-host/000000000000/jobs?x=1"}"#,
                "sqs:GetQueueAttributes",
                jobs,
            ),
            (
                "AmazonSQS.CreateQueue",
                r#"{"QueueName":"jobs"}"#,
                "sqs:CreateQueue",
                jobs,
            ),
            (
                "AmazonSQS.GetQueueUrl",
                r#"{"QueueName":"jobs"}"#,
                "sqs:GetQueueUrl",
                jobs,
            ),
            ("AmazonSQS.ListQueues", "{}", "sqs:ListQueues", "*"),
            (
                "AmazonSQS.PurgeQueue",
                r#"{"QueueUrl":"nothing"}"#,
                "sqs:PurgeQueue",
                "*",
            ),
            ("AmazonSQS.DeleteQueue", "garbage", "sqs:DeleteQueue", "*"),
        ];
        for (target, body, action, resource) in cases {
            let (a, r, p) =
                one("POST", "/", Some(target), body).unwrap_or_else(|e| panic!("{target}: {e}"));
            assert_eq!(
                (a.as_str(), r.as_str(), p),
                (action, resource, Protocol::Sqs),
                "{target}"
            );
        }
        assert!(one("POST", "/", Some("AmazonSQS.Nope"), "{}").is_err());
        assert!(one("POST", "/", Some("DynamoDB_20120810.GetItem"), "{}").is_err());
        assert!(one("POST", "/", None, "{}").is_err());
    }

    #[test]
    fn logs_targets() {
        let g = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/hello";
        let stream = "2024/01/01/[$LATEST]abc";
        let get = format!(r#"{{"logGroupName":"/aws/lambda/hello","logStreamName":"{stream}"}}"#);
        let cases = [
            ("DescribeLogGroups", "{}".to_string(), "*".to_string()),
            (
                "DescribeLogGroups",
                r#"{"logGroupNamePrefix":"/aws"}"#.into(),
                "*".into(),
            ),
            (
                "DescribeLogStreams",
                r#"{"logGroupName":"/aws/lambda/hello"}"#.into(),
                g.into(),
            ),
            (
                "FilterLogEvents",
                r#"{"logGroupIdentifier":"arn:aws:logs:eu-west-1:1:log-group:/aws/lambda/hello:*"}"#
                    .into(),
                g.into(),
            ),
            (
                "FilterLogEvents",
                r#"{"logGroupIdentifier":"/aws/lambda/hello"}"#.into(),
                g.into(),
            ),
            ("GetLogEvents", get, format!("{g}:log-stream:{stream}")),
            ("FilterLogEvents", "not json".into(), "*".into()),
            (
                "FilterLogEvents",
                r#"{"logGroupName":"bad name!"}"#.into(),
                "*".into(),
            ),
        ];
        for (op, body, resource) in cases {
            let target = format!("Logs_20140328.{op}");
            let (a, r, p) =
                one("POST", "/", Some(&target), &body).unwrap_or_else(|e| panic!("{target}: {e}"));
            assert_eq!(
                (a.as_str(), r.as_str(), p),
                (
                    format!("logs:{op}").as_str(),
                    resource.as_str(),
                    Protocol::Logs
                ),
                "{target} {body}"
            );
        }
        assert!(one("POST", "/", Some("Logs_20140328.PutLogEvents"), "{}").is_err());
    }

    #[test]
    fn unknown_operations() {
        for (m, uri) in [
            ("GET", "/nope"),
            ("PATCH", "/2015-03-31/functions/hello"),
            ("POST", "/2015-03-31/functions/hello/code"),
            ("GET", "/stratus/v1/nothing"),
            ("GET", "/2015-03-31/functions/a/b/c/d/e"),
        ] {
            let e = one(m, uri, None, "").map(|r| r.0);
            assert!(
                matches!(e, Err(ClassifyError::UnknownOperation { .. })),
                "{m} {uri}: {e:?}"
            );
        }
    }

    #[test]
    fn which_requests_need_their_body() {
        assert!(needs_body(&Method::POST, "/2015-03-31/functions"));
        assert!(needs_body(&Method::POST, "/2015-03-31/functions/"));
        assert!(needs_body(&Method::POST, "/"));
        assert!(needs_body(&Method::POST, "/stratus/v1/keys"));
        assert!(!needs_body(
            &Method::POST,
            "/2015-03-31/functions/hello/invocations"
        ));
        assert!(!needs_body(&Method::PUT, "/stratus/v1/blobs/ab"));
    }
}
