//! `functions.<name>.events[]`: each entry is a one-key map naming the event
//! type. The types Stratus wires are read into typed values; every other type is
//! kept as written, with a warning.
//!
//! ```yaml
//! events:
//!   - http: GET /users/{id}            # or {path, method, cors}
//!   - httpApi: 'POST /orders'          # or '*', or {method, path}
//!   - schedule: rate(5 minutes)        # or cron(0 12 * * ? *), or {rate, enabled, input, inputPath, name}
//!   - sqs: arn:aws:sqs:us-east-1:000000000000:jobs   # or {arn, batchSize, maximumBatchingWindow, functionResponseType, enabled}
//! ```

use crate::spanned::{Node, Value};
use crate::types::{
    Event, HttpApiEvent, HttpCors, HttpEvent, ScheduleEvent, SqsEvent, DEFAULT_SQS_BATCH_SIZE,
};

use super::cors::DEFAULT_CORS_HEADERS;
use super::reader::{boolean, is_intrinsic, string, string_list, whole, Checker, Fields, Range};

/// Event types of the Serverless Framework v3 that Stratus does not wire.
const OTHER_V3_EVENTS: &[&str] = &[
    "activemq",
    "alb",
    "alexaSkill",
    "alexaSmartHome",
    "cloudFront",
    "cloudwatchEvent",
    "cloudwatchLog",
    "cognitoUserPool",
    "eventBridge",
    "iot",
    "iotFleetProvisioning",
    "kafka",
    "msk",
    "rabbitmq",
    "s3",
    "sns",
    "stream",
    "websocket",
];

const HTTP_METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// Reads one entry of `events`.
pub(crate) fn event(c: &mut Checker, node: &Node, path: &str) -> Option<Event> {
    const WHAT: &str =
        "an event: a map with one key such as `http`, `httpApi`, `schedule` or `sqs`";
    let Some(entries) = node.as_map() else {
        c.expected(node, path, WHAT);
        return None;
    };
    let [entry] = entries else {
        if entries.is_empty() {
            c.expected(node, path, WHAT);
        } else {
            let kinds: Vec<String> = entries.iter().map(|e| format!("`{}`", e.key)).collect();
            c.error(
                &node.span,
                path,
                format!(
                    "an event has exactly one type, found {}; start each with its own `-`",
                    kinds.join(" and ")
                ),
            );
        }
        return None;
    };
    let kind = entry.key.as_str();
    let path = format!("{path}.{kind}");
    let value = &entry.value;
    match kind {
        "http" => http(c, value, &path).map(Event::Http),
        "httpApi" => http_api(c, value, &path).map(Event::HttpApi),
        "schedule" => schedule(c, value, &path).map(Event::Schedule),
        "sqs" => sqs(c, value, &path).map(Event::Sqs),
        _ => {
            let message = if OTHER_V3_EVENTS.contains(&kind) {
                format!("`{kind}` events are not supported by Stratus; the event is kept but nothing will trigger it")
            } else {
                format!("unknown event type `{kind}` (Stratus wires http, httpApi, schedule and sqs); the event is kept but nothing will trigger it")
            };
            c.warn(&entry.key_span, &path, message);
            Some(Event::Other {
                kind: kind.to_string(),
                config: value.to_json(),
            })
        }
    }
}

/// `METHOD /path` → (method, path).
fn method_and_path(s: &str) -> Option<(String, String)> {
    let mut words = s.split_whitespace();
    let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    Some((method.to_ascii_uppercase(), path.to_string()))
}

fn rest_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn http_method(c: &mut Checker, node: &Node, path: &str, method: &str) -> Option<String> {
    let upper = method.to_ascii_uppercase();
    if HTTP_METHODS.contains(&upper.as_str()) {
        Some(upper)
    } else {
        c.expected(
            node,
            path,
            &format!("an HTTP method ({})", HTTP_METHODS.join(", ")),
        );
        None
    }
}

/// `http: GET /path` or `{path, method, cors}`.
fn http(c: &mut Checker, node: &Node, path: &str) -> Option<HttpEvent> {
    if let Value::String(s) = &node.value {
        let Some((method, p)) = method_and_path(s) else {
            c.expected(node, path, "`METHOD /path` such as `GET /users`");
            return None;
        };
        let method = http_method(c, node, path, &method)?;
        return Some(HttpEvent {
            method,
            path: rest_path(&p),
            cors: None,
        });
    }
    let mut f = Fields::new(
        c,
        node,
        path,
        "`METHOD /path` or a map with `path` and `method`",
    )?;
    let p = match f.get("path") {
        Some(n) => string(c, n, &f.path_of("path")),
        None => {
            c.error(&node.span, path, "missing `path` (e.g. `path: users/{id}`)");
            None
        }
    };
    let method = match f.get("method") {
        Some(n) => {
            let mp = f.path_of("method");
            string(c, n, &mp).and_then(|m| http_method(c, n, &mp, &m))
        }
        None => {
            c.error(&node.span, path, "missing `method` (e.g. `method: get`)");
            None
        }
    };
    let cors = f.get("cors").map(|n| (n, f.path_of("cors")));
    f.finish(
        c,
        &[
            "async",
            "authorizer",
            "connectionId",
            "connectionType",
            "documentation",
            "integration",
            "operationId",
            "private",
            "request",
            "response",
        ],
    );
    let (p, method) = (p?, method?);
    let cors = match cors {
        Some((n, cp)) => http_cors(c, n, &cp, &method)?,
        None => None,
    };
    Some(HttpEvent {
        method,
        path: rest_path(&p),
        cors,
    })
}

/// `cors: true` or `{origin, origins, headers, methods, allowCredentials, maxAge, cacheControl}`.
fn http_cors(c: &mut Checker, node: &Node, path: &str, method: &str) -> Option<Option<HttpCors>> {
    let mut cors = HttpCors {
        origins: vec!["*".into()],
        headers: DEFAULT_CORS_HEADERS.iter().map(|s| s.to_string()).collect(),
        methods: vec!["OPTIONS".into(), method.to_string()],
        allow_credentials: false,
        max_age: None,
        cache_control: None,
    };
    if let Value::Bool(enabled) = node.value {
        return Some(enabled.then_some(cors));
    }
    let mut f = Fields::new(c, node, path, "true, false or a map of CORS settings")?;
    let mut origins = Vec::new();
    if let Some(n) = f.get("origin") {
        origins.extend(string(c, n, &f.path_of("origin")));
    }
    if let Some(n) = f.get("origins") {
        origins.extend(string_list(c, n, &f.path_of("origins")).unwrap_or_default());
    }
    if !origins.is_empty() {
        cors.origins = origins;
    }
    if let Some(n) = f.get("headers") {
        cors.headers = string_list(c, n, &f.path_of("headers")).unwrap_or_default();
    }
    if let Some(n) = f.get("methods") {
        cors.methods = string_list(c, n, &f.path_of("methods")).unwrap_or_default();
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
            Range::at_least(0),
        );
    }
    if let Some(n) = f.get("cacheControl") {
        cors.cache_control = string(c, n, &f.path_of("cacheControl"));
    }
    f.finish(c, &[]);
    Some(Some(cors))
}

/// `httpApi: '*'`, `'GET /path'` or `{method, path}`.
fn http_api(c: &mut Checker, node: &Node, path: &str) -> Option<HttpApiEvent> {
    const ROUTE: &str = "`*` or `METHOD /path` such as `GET /users`";
    if let Value::String(s) = &node.value {
        if s.trim() == "*" {
            return Some(HttpApiEvent {
                method: "*".into(),
                path: "*".into(),
                cors: None,
            });
        }
        let Some((method, p)) = method_and_path(s) else {
            c.expected(node, path, ROUTE);
            return None;
        };
        let method = http_api_method(c, node, path, &method)?;
        let p = http_api_path(c, node, path, &p)?;
        return Some(HttpApiEvent {
            method,
            path: p,
            cors: None,
        });
    }
    let mut f = Fields::new(
        c,
        node,
        path,
        &format!("{ROUTE}, or a map with `method` and `path`"),
    )?;
    let method = match f.get("method") {
        Some(n) => {
            let mp = f.path_of("method");
            string(c, n, &mp).and_then(|m| http_api_method(c, n, &mp, &m))
        }
        None => Some("*".into()),
    };
    let p = match f.get("path") {
        Some(n) => {
            let pp = f.path_of("path");
            string(c, n, &pp).and_then(|p| http_api_path(c, n, &pp, &p))
        }
        None => {
            c.error(
                &node.span,
                path,
                "missing `path` (e.g. `path: /users/{id}`)",
            );
            None
        }
    };
    f.finish(c, &["authorizer", "swaggerTags"]);
    // `cors` comes from `provider.httpApi.cors`, set when lowering.
    Some(HttpApiEvent {
        method: method?,
        path: p?,
        cors: None,
    })
}

/// `*` or an HTTP method (`ANY` is read as `*`).
fn http_api_method(c: &mut Checker, node: &Node, path: &str, method: &str) -> Option<String> {
    let upper = method.to_ascii_uppercase();
    if upper == "*" || upper == "ANY" {
        return Some("*".into());
    }
    if HTTP_METHODS.contains(&upper.as_str()) {
        return Some(upper);
    }
    c.expected(
        node,
        path,
        &format!("`*` or an HTTP method ({})", HTTP_METHODS.join(", ")),
    );
    None
}

/// `*` or a path starting with `/`.
fn http_api_path(c: &mut Checker, node: &Node, path: &str, p: &str) -> Option<String> {
    if p == "*" || p.starts_with('/') {
        Some(p.to_string())
    } else {
        c.expected(node, path, "a path starting with `/` (or `*`)");
        None
    }
}

/// `schedule: rate(…)` / `cron(…)` or `{rate, enabled, input, inputPath, name}`.
fn schedule(c: &mut Checker, node: &Node, path: &str) -> Option<ScheduleEvent> {
    if let Value::String(s) = &node.value {
        let rate = schedule_expression(c, node, path, s)?;
        return Some(ScheduleEvent {
            rate: vec![rate],
            enabled: true,
            input: None,
            input_path: None,
            name: None,
        });
    }
    let mut f = Fields::new(c, node, path, "`rate(…)`, `cron(…)` or a map with `rate`")?;
    let rate = match f.get("rate") {
        Some(n) => {
            let rp = f.path_of("rate");
            match &n.value {
                Value::String(s) => schedule_expression(c, n, &rp, s).map(|r| vec![r]),
                Value::Seq(items) => {
                    let mut out = Vec::new();
                    let mut ok = !items.is_empty();
                    if items.is_empty() {
                        c.expected(n, &rp, "at least one `rate(…)` or `cron(…)` expression");
                    }
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{rp}[{i}]");
                        match string(c, item, &ip)
                            .and_then(|s| schedule_expression(c, item, &ip, &s))
                        {
                            Some(r) => out.push(r),
                            None => ok = false,
                        }
                    }
                    ok.then_some(out)
                }
                _ => {
                    c.expected(n, &rp, "a `rate(…)`/`cron(…)` expression or a list of them");
                    None
                }
            }
        }
        None => {
            c.error(
                &node.span,
                path,
                "missing `rate` (e.g. `rate: rate(10 minutes)`)",
            );
            None
        }
    };
    let enabled = match f.get("enabled") {
        Some(n) => boolean(c, n, &f.path_of("enabled")),
        None => Some(true),
    };
    let input = f.get("input").map(|n| match &n.value {
        // A string input is JSON text in the Serverless Framework; keep it as
        // the JSON it holds when it parses, else as the text.
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| n.to_json()),
        _ => n.to_json(),
    });
    let input_path = f
        .get("inputPath")
        .and_then(|n| string(c, n, &f.path_of("inputPath")));
    let has_transformer = node.get("inputTransformer").is_some();
    let name = f.get("name").and_then(|n| string(c, n, &f.path_of("name")));
    f.finish(
        c,
        &[
            "description",
            "inputTransformer",
            "method",
            "role",
            "timezone",
        ],
    );
    let inputs = usize::from(input.is_some())
        + usize::from(input_path.is_some())
        + usize::from(has_transformer);
    if inputs > 1 {
        c.error(
            &node.span,
            path,
            "use only one of `input`, `inputPath` and `inputTransformer`",
        );
        return None;
    }
    Some(ScheduleEvent {
        rate: rate?,
        enabled: enabled?,
        input,
        input_path,
        name,
    })
}

/// Checks `rate(<n> <unit>)` or `cron(<6 fields>)`.
fn schedule_expression(c: &mut Checker, node: &Node, path: &str, s: &str) -> Option<String> {
    const WHAT: &str = "`rate(<n> minute|minutes|hour|hours|day|days)` or `cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)`";
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut words = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            c.expected(node, path, WHAT);
            return None;
        };
        let Ok(n) = n.parse::<u64>() else {
            c.expected(node, path, WHAT);
            return None;
        };
        let singular = matches!(unit, "minute" | "hour" | "day");
        let plural = matches!(unit, "minutes" | "hours" | "days");
        if n == 0 || !(singular || plural) {
            c.expected(node, path, WHAT);
            return None;
        }
        if n == 1 && plural {
            c.error(
                &node.span,
                path,
                format!(
                    "`{s}`: write the unit in the singular for 1 (`rate(1 {})`)",
                    unit.trim_end_matches('s')
                ),
            );
            return None;
        }
        if n > 1 && singular {
            c.error(
                &node.span,
                path,
                format!("`{s}`: write the unit in the plural for {n} (`rate({n} {unit}s)`)"),
            );
            return None;
        }
        return Some(s.to_string());
    }
    if let Some(inner) = s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            c.error(
                &node.span,
                path,
                format!(
                    "`{s}`: a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                    fields.len()
                ),
            );
            return None;
        }
        let allowed = |ch: char| ch.is_ascii_alphanumeric() || ",-*?/#".contains(ch);
        if let Some(bad) = fields.iter().find(|f| !f.chars().all(allowed)) {
            c.error(
                &node.span,
                path,
                format!("`{s}`: unexpected characters in cron field `{bad}`"),
            );
            return None;
        }
        if fields[2] != "?" && fields[4] != "?" {
            c.error(
                &node.span,
                path,
                format!("`{s}`: one of day-of-month (3rd field) and day-of-week (5th field) must be `?`"),
            );
            return None;
        }
        return Some(s.to_string());
    }
    c.expected(node, path, WHAT);
    None
}

/// `sqs: <arn>` or `{arn, batchSize, maximumBatchingWindow, functionResponseType, enabled}`.
fn sqs(c: &mut Checker, node: &Node, path: &str) -> Option<SqsEvent> {
    if let Value::String(_) = &node.value {
        let arn = queue_arn(c, node, path)?;
        return Some(SqsEvent {
            arn,
            batch_size: DEFAULT_SQS_BATCH_SIZE,
            maximum_batching_window: None,
            function_response_type: None,
            enabled: true,
        });
    }
    let mut f = Fields::new(c, node, path, "a queue ARN or a map with `arn`")?;
    let arn = match f.get("arn") {
        Some(n) => queue_arn(c, n, &f.path_of("arn")),
        None => {
            c.error(
                &node.span,
                path,
                "missing `arn` (e.g. `arn: arn:aws:sqs:us-east-1:000000000000:jobs`)",
            );
            None
        }
    };
    let batch_size = match f.get("batchSize") {
        Some(n) => whole(
            c,
            n,
            &f.path_of("batchSize"),
            "a whole number of messages",
            Range::between(1, 10_000),
        ),
        None => Some(DEFAULT_SQS_BATCH_SIZE),
    };
    let window = f.get("maximumBatchingWindow").map(|n| {
        whole(
            c,
            n,
            &f.path_of("maximumBatchingWindow"),
            "a whole number of seconds",
            Range::between(0, 300),
        )
    });
    let response_type = f.get("functionResponseType").map(|n| {
        let p = f.path_of("functionResponseType");
        match string(c, n, &p) {
            Some(s) if s == "ReportBatchItemFailures" => Some(s),
            Some(_) => {
                c.expected(n, &p, "`ReportBatchItemFailures`");
                None
            }
            None => None,
        }
    });
    let enabled = match f.get("enabled") {
        Some(n) => boolean(c, n, &f.path_of("enabled")),
        None => Some(true),
    };
    f.finish(c, &["filterPatterns", "maximumConcurrency"]);
    Some(SqsEvent {
        arn: arn?,
        batch_size: batch_size?,
        maximum_batching_window: match window {
            Some(w) => Some(w?),
            None => None,
        },
        function_response_type: match response_type {
            Some(r) => Some(r?),
            None => None,
        },
        enabled: enabled?,
    })
}

fn queue_arn(c: &mut Checker, node: &Node, path: &str) -> Option<serde_json::Value> {
    match &node.value {
        Value::String(s) if s.starts_with("arn:") => Some(node.to_json()),
        _ if is_intrinsic(node) => Some(node.to_json()),
        _ => {
            c.expected(
                node,
                path,
                "an SQS queue ARN (arn:aws:sqs:<region>:<account>:<queue>) or a CloudFormation reference such as !GetAtt Queue.Arn",
            );
            None
        }
    }
}
