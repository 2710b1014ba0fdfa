//! The value types that settings of `serverless.yml` are read into and that
//! the resolved service carries as they are: runtime ids, the architecture,
//! event sources with their CORS settings, function URLs and asynchronous
//! destinations.
//!
//! A leaf module, so that reading and lowering do not depend on each other:
//! `schema` builds these values while it checks the file, `model` copies them
//! into the resolved service. Their public paths are those `model` re-exports
//! (`stratus_manifest::model::Event`, `…::Runtime`, …).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Default SQS batch size, as in Lambda.
pub const DEFAULT_SQS_BATCH_SIZE: u32 = 10;

/// Lambda runtimes Stratus runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Runtime {
    /// `nodejs18.x`
    #[serde(rename = "nodejs18.x")]
    Nodejs18,
    /// `nodejs20.x`
    #[serde(rename = "nodejs20.x")]
    Nodejs20,
    /// `nodejs22.x`
    #[serde(rename = "nodejs22.x")]
    Nodejs22,
    /// `python3.9`
    #[serde(rename = "python3.9")]
    Python39,
    /// `python3.10`
    #[serde(rename = "python3.10")]
    Python310,
    /// `python3.11`
    #[serde(rename = "python3.11")]
    Python311,
    /// `python3.12`
    #[serde(rename = "python3.12")]
    Python312,
    /// `python3.13`
    #[serde(rename = "python3.13")]
    Python313,
    /// `ruby3.2`
    #[serde(rename = "ruby3.2")]
    Ruby32,
    /// `ruby3.3`
    #[serde(rename = "ruby3.3")]
    Ruby33,
    /// `ruby3.4`
    #[serde(rename = "ruby3.4")]
    Ruby34,
    /// `java17`
    #[serde(rename = "java17")]
    Java17,
    /// `java21`
    #[serde(rename = "java21")]
    Java21,
    /// `java25`
    #[serde(rename = "java25")]
    Java25,
    /// `provided`
    #[serde(rename = "provided")]
    Provided,
    /// `provided.al2`
    #[serde(rename = "provided.al2")]
    ProvidedAl2,
    /// `provided.al2023`
    #[serde(rename = "provided.al2023")]
    ProvidedAl2023,
    /// `nodejs12.x` (deprecated by Lambda: the server refuses it or runs it on the
    /// nearest supported runtime, per its `--legacy-runtimes`)
    #[serde(rename = "nodejs12.x")]
    Nodejs12,
    /// `nodejs14.x` (deprecated, as `nodejs12.x`)
    #[serde(rename = "nodejs14.x")]
    Nodejs14,
    /// `nodejs16.x` (deprecated, as `nodejs12.x`)
    #[serde(rename = "nodejs16.x")]
    Nodejs16,
    /// `python3.7` (deprecated, as `nodejs12.x`)
    #[serde(rename = "python3.7")]
    Python37,
    /// `python3.8` (deprecated, as `nodejs12.x`)
    #[serde(rename = "python3.8")]
    Python38,
    /// `ruby2.7` (deprecated, as `nodejs12.x`)
    #[serde(rename = "ruby2.7")]
    Ruby27,
    /// `java8` (deprecated, as `nodejs12.x`)
    #[serde(rename = "java8")]
    Java8,
    /// `java11` (deprecated, as `nodejs12.x`)
    #[serde(rename = "java11")]
    Java11,
    /// `go1.x` (retired by Lambda): an alias of `provided.al2` — the Go binary is
    /// built as `bootstrap` (`stratus_rules::RUNTIME_ALIASES`).
    #[serde(rename = "go1.x")]
    Go1x,
}

/// What kind of program a runtime starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeFamily {
    /// Node.js.
    Node,
    /// Python.
    Python,
    /// Ruby.
    Ruby,
    /// Java.
    Java,
    /// A `bootstrap` executable.
    Provided,
}

impl Runtime {
    /// Every supported runtime, in the order listed to users.
    pub const ALL: [Runtime; 17] = [
        Runtime::Nodejs18,
        Runtime::Nodejs20,
        Runtime::Nodejs22,
        Runtime::Python39,
        Runtime::Python310,
        Runtime::Python311,
        Runtime::Python312,
        Runtime::Python313,
        Runtime::Ruby32,
        Runtime::Ruby33,
        Runtime::Ruby34,
        Runtime::Java17,
        Runtime::Java21,
        Runtime::Java25,
        Runtime::Provided,
        Runtime::ProvidedAl2,
        Runtime::ProvidedAl2023,
    ];

    /// Deprecated Node.js, Python, Ruby and Java runtimes a manifest may name; the
    /// server decides (`stratus_rules::LEGACY_RUNTIMES`).
    pub const LEGACY: [Runtime; 8] = [
        Runtime::Nodejs12,
        Runtime::Nodejs14,
        Runtime::Nodejs16,
        Runtime::Python37,
        Runtime::Python38,
        Runtime::Ruby27,
        Runtime::Java8,
        Runtime::Java11,
    ];

    /// Retired IDs another one runs unchanged (`stratus_rules::RUNTIME_ALIASES`).
    pub const ALIASES: [Runtime; 1] = [Runtime::Go1x];

    /// The Lambda identifier (`nodejs20.x`).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Nodejs18 => "nodejs18.x",
            Runtime::Nodejs20 => "nodejs20.x",
            Runtime::Nodejs22 => "nodejs22.x",
            Runtime::Python39 => "python3.9",
            Runtime::Python310 => "python3.10",
            Runtime::Python311 => "python3.11",
            Runtime::Python312 => "python3.12",
            Runtime::Python313 => "python3.13",
            Runtime::Ruby32 => "ruby3.2",
            Runtime::Ruby33 => "ruby3.3",
            Runtime::Ruby34 => "ruby3.4",
            Runtime::Java17 => "java17",
            Runtime::Java21 => "java21",
            Runtime::Java25 => "java25",
            Runtime::Provided => "provided",
            Runtime::ProvidedAl2 => "provided.al2",
            Runtime::ProvidedAl2023 => "provided.al2023",
            Runtime::Nodejs12 => "nodejs12.x",
            Runtime::Nodejs14 => "nodejs14.x",
            Runtime::Nodejs16 => "nodejs16.x",
            Runtime::Python37 => "python3.7",
            Runtime::Python38 => "python3.8",
            Runtime::Ruby27 => "ruby2.7",
            Runtime::Java8 => "java8",
            Runtime::Java11 => "java11",
            Runtime::Go1x => "go1.x",
        }
    }

    /// The runtime named by a Lambda identifier.
    pub fn from_id(id: &str) -> Option<Runtime> {
        Runtime::ALL
            .into_iter()
            .chain(Runtime::LEGACY)
            .chain(Runtime::ALIASES)
            .find(|r| r.as_str() == id)
    }

    /// Node.js, Python, Ruby, Java or a `bootstrap` executable.
    pub fn family(self) -> RuntimeFamily {
        match self {
            Runtime::Nodejs18
            | Runtime::Nodejs20
            | Runtime::Nodejs22
            | Runtime::Nodejs12
            | Runtime::Nodejs14
            | Runtime::Nodejs16 => RuntimeFamily::Node,
            Runtime::Python37
            | Runtime::Python38
            | Runtime::Python39
            | Runtime::Python310
            | Runtime::Python311
            | Runtime::Python312
            | Runtime::Python313 => RuntimeFamily::Python,
            Runtime::Ruby27 | Runtime::Ruby32 | Runtime::Ruby33 | Runtime::Ruby34 => {
                RuntimeFamily::Ruby
            }
            Runtime::Java8
            | Runtime::Java11
            | Runtime::Java17
            | Runtime::Java21
            | Runtime::Java25 => RuntimeFamily::Java,
            Runtime::Provided | Runtime::ProvidedAl2 | Runtime::ProvidedAl2023 => {
                RuntimeFamily::Provided
            }
            Runtime::Go1x => RuntimeFamily::Provided,
        }
    }

    /// `nodejs18.x, nodejs20.x, …` for messages.
    pub fn supported_list() -> String {
        Runtime::ALL.map(Runtime::as_str).join(", ")
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Instruction set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Architecture {
    /// `x86_64` (the default).
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// `arm64`.
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// `x86_64` / `arm64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// One event source of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// `http:` — API Gateway REST API (payload 1.0).
    Http(HttpEvent),
    /// `httpApi:` — API Gateway HTTP API (payload 2.0).
    HttpApi(HttpApiEvent),
    /// `schedule:` — a rate or cron schedule.
    Schedule(ScheduleEvent),
    /// `sqs:` — an SQS queue.
    Sqs(SqsEvent),
    /// Any other event type, kept as written; Stratus does not wire it.
    Other {
        /// The event type (`s3`, `sns`, …).
        kind: String,
        /// Its settings as written.
        config: Json,
    },
}

/// An `http` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpEvent {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path starting with `/`, with `{param}` and `{proxy+}` segments as written.
    pub path: String,
    /// CORS settings, when enabled.
    pub cors: Option<HttpCors>,
}

/// CORS of an `http` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCors {
    /// Allowed origins (default `*`).
    pub origins: Vec<String>,
    /// Allowed request headers.
    pub headers: Vec<String>,
    /// Allowed methods (default `OPTIONS` and the event's method).
    pub methods: Vec<String>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` in seconds.
    pub max_age: Option<u32>,
    /// `Cache-Control` of the preflight response.
    pub cache_control: Option<String>,
}

/// An `httpApi` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpApiEvent {
    /// Upper-case method, or `*` for any.
    pub method: String,
    /// Path starting with `/`, or `*` for any path.
    pub path: String,
    /// The HTTP API's CORS settings (`provider.httpApi.cors`), copied into
    /// each of its routes; `None` when CORS is off. Events stored before
    /// this field existed read as `None`.
    #[serde(default)]
    pub cors: Option<ApiCors>,
}

/// CORS of an HTTP API (`provider.httpApi.cors`, copied into each route) or of a
/// function URL (`url.cors`): both take the same settings. Defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCors {
    /// Allowed origins (default `*`).
    pub allowed_origins: Vec<String>,
    /// Allowed request headers (default: the Serverless Framework's, seven for an
    /// HTTP API and five for a function URL).
    pub allowed_headers: Vec<String>,
    /// Allowed methods (HTTP API default: `OPTIONS` and every method of the
    /// service's `httpApi` routes, or `*` when a route takes any method; function
    /// URL default `*`).
    pub allowed_methods: Vec<String>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: bool,
    /// Response headers exposed to the page.
    pub exposed_response_headers: Vec<String>,
    /// `Access-Control-Max-Age` of preflight answers, in seconds.
    pub max_age: Option<u32>,
}

/// A `schedule` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEvent {
    /// `rate(…)` / `cron(…)` expressions (one or more).
    pub rate: Vec<String>,
    /// Whether the schedule fires (default true).
    pub enabled: bool,
    /// Constant event payload instead of the scheduled-event JSON.
    pub input: Option<Json>,
    /// JSONPath selecting part of the scheduled-event JSON as payload.
    pub input_path: Option<String>,
    /// Rule name.
    pub name: Option<String>,
}

/// An `sqs` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqsEvent {
    /// Queue ARN (a string, or a CloudFormation reference object as written).
    pub arn: Json,
    /// Messages per invocation (1–10000), default 10.
    pub batch_size: u32,
    /// Seconds to gather a batch (0–300).
    pub maximum_batching_window: Option<u32>,
    /// `ReportBatchItemFailures` when set.
    pub function_response_type: Option<String>,
    /// Whether polling is on (default true).
    pub enabled: bool,
}

/// A function URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUrl {
    /// `NONE` or `AWS_IAM`.
    pub auth_type: String,
    /// `BUFFERED` (default) or `RESPONSE_STREAM`.
    pub invoke_mode: String,
    /// CORS settings, when enabled.
    pub cors: Option<ApiCors>,
}

/// Asynchronous invocation destinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destinations {
    /// Where successful results go.
    pub on_success: Option<Destination>,
    /// Where failures go.
    pub on_failure: Option<Destination>,
}

/// One destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// Another function of this service, by its key.
    Function(String),
    /// A target ARN (`arn:aws:sqs:…`, `arn:aws:sns:…`, `arn:aws:lambda:…`,
    /// `arn:aws:events:…`).
    Arn(String),
    /// `{type, arn}` with a CloudFormation reference as the ARN.
    Reference {
        /// `function`, `sns`, `sqs` or `eventBus`.
        kind: String,
        /// The reference as written.
        arn: Json,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_api_events_stored_without_cors_still_read() {
        // The server keeps each function's events as JSON; rows written
        // before `cors` existed must load as routes without CORS.
        let event: Event =
            serde_json::from_str(r#"{"http_api":{"method":"GET","path":"/items"}}"#).unwrap();
        assert_eq!(
            event,
            Event::HttpApi(HttpApiEvent {
                method: "GET".into(),
                path: "/items".into(),
                cors: None,
            })
        );
    }
}
