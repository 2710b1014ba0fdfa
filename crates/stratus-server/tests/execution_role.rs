//! Execution roles end to end, in-process (`tower::ServiceExt::oneshot`, no socket)
//! with real Node.js and Python functions: a deployment turns `serverless.yml`'s role
//! statements into the function's policy (refusing a bad one before anything is
//! deployed), each environment gets its own credentials from the scheduler's
//! [`CredentialIssuer`] — which sees the policy — and they are revoked when the
//! environment ends. Also: neither CreateFunction, UpdateFunctionConfiguration nor a
//! deployment accepts a value for a reserved environment variable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use stratus_scheduler::{CredentialIssuer, EnvCredentials, FunctionSpec, Revocation};
use stratus_server::{RunningServer, ServerConfig};
use tower::ServiceExt;

/// An issuer that records what it issued and what was revoked. (The server's real
/// issuer mints session keys; this test is about the scheduler's side of the hook:
/// when it is called, with what, and that revocation follows the environment.)
#[derive(Debug, Default)]
struct Recorder {
    issued: Mutex<Vec<Issued>>,
    revoked: Arc<Mutex<BTreeSet<String>>>,
}

#[derive(Debug, Clone)]
struct Issued {
    function: String,
    access_key_id: String,
    policy: Option<String>,
}

impl CredentialIssuer for Recorder {
    fn issue(&self, spec: &FunctionSpec, env_id: u64) -> Result<EnvCredentials, String> {
        let access_key_id = format!("ASIASTRATUS{env_id:08}");
        self.issued.lock().unwrap().push(Issued {
            function: spec.function_name.to_string(),
            access_key_id: access_key_id.clone(),
            policy: spec.role_policy.as_deref().map(str::to_string),
        });
        let revoked = self.revoked.clone();
        let key = access_key_id.clone();
        Ok(EnvCredentials {
            access_key_id,
            secret_access_key: format!("secret-{env_id}"),
            session_token: format!("token-{env_id}"),
            guard: Revocation::new(move || {
                revoked.lock().unwrap().insert(key);
            }),
        })
    }
}

struct Api {
    _server: RunningServer,
    app: Router,
    recorder: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
        let server = stratus_server::start(cfg).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        server.scheduler().set_credential_issuer(recorder.clone());
        let app = server.router();
        Self {
            _server: server,
            app,
            recorder,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Body) -> (StatusCode, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(body)
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let (status, bytes) = self.call(method, path, body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Uploads `zip` and deploys one function `fn` of service `svc` stage `dev` with
    /// `manifest`; returns the last NDJSON event and every step message.
    async fn deploy(&self, zip: &[u8], function: Value, manifest: Value) -> (Value, Vec<String>) {
        let sha = stratus_package::sha256_hex(zip);
        let (status, _) = self
            .call(
                "PUT",
                &format!("/stratus/v1/blobs/{sha}"),
                Body::from(zip.to_vec()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let mut function = function;
        function["codeSha256"] = json!(sha);
        let req = json!({ "functions": [function], "manifest": manifest });
        let (status, bytes) = self
            .call(
                "POST",
                "/stratus/v1/services/svc/dev/deployments",
                Body::from(req.to_string()),
            )
            .await;
        let text = String::from_utf8(bytes).unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let steps = events
            .iter()
            .filter(|e| e["type"] == "step")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect();
        let last = events.last().cloned().unwrap_or(Value::Null);
        assert!(
            status == StatusCode::OK || last["type"] == "error",
            "{status}: {text}"
        );
        (last, steps)
    }

    async fn invoke(&self, name: &str) -> Value {
        let (status, body) = self
            .json(
                "POST",
                &format!("/2015-03-31/functions/{name}/invocations"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn zip_of(file: &str, source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), source).unwrap();
    stratus_package::zip_dir(dir.path()).unwrap()
}

/// A Node.js handler that waits a little (so concurrent calls need two
/// environments) and answers the credentials it sees.
const NODE: &str = "exports.handler = async () => {\n\
    await new Promise((r) => setTimeout(r, 400));\n\
    return { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, token: process.env.AWS_SESSION_TOKEN };\n\
};\n";

const PYTHON: &str = concat!(
    "import os\n",
    "def handler(event, context):\n",
    "    e = os.environ\n",
    "    return {'id': e.get('AWS_ACCESS_KEY_ID'), 'secret': e.get('AWS_SECRET_ACCESS_KEY'), 'token': e.get('AWS_SESSION_TOKEN')}\n",
);

fn function(name: &str, runtime: &str, handler: &str) -> Value {
    json!({
        "key": name, "name": name, "runtime": runtime, "handler": handler,
        "memorySize": 128, "timeout": 10,
    })
}

fn manifest_with(statements: Value, key: &str) -> Value {
    json!({
        "service": "svc", "stage": "dev",
        "iam_statements": statements,
        "resources": { "Resources": { "Jobs": { "Type": "AWS::SQS::Queue" } } },
        "functions": { key: { "name": key } },
    })
}

async fn wait_revoked(api: &Api, keys: &[String]) {
    for _ in 0..300 {
        let revoked = api.recorder.revoked.lock().unwrap().clone();
        if keys.iter().all(|k| revoked.contains(k)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "credentials {keys:?} were not revoked; revoked: {:?}",
        api.recorder.revoked.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_environment_gets_its_own_credentials_scoped_to_the_role_and_revoked_at_its_end() {
    let api = Api::start().await;
    let statements = json!([
        { "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": { "Fn::GetAtt": ["Jobs", "Arn"] } },
        { "Effect": "Deny", "Action": "lambda:*", "Resource": "*" },
    ]);
    let (last, _) = api
        .deploy(
            &zip_of("index.js", NODE),
            function("worker", "nodejs20.x", "index.handler"),
            manifest_with(statements, "worker"),
        )
        .await;
    assert_eq!(last["type"], "done", "{last}");

    // Two calls at once: two environments, each with its own credentials.
    let (a, b) = tokio::join!(api.invoke("worker"), api.invoke("worker"));
    assert_ne!(a["id"], b["id"], "{a} {b}");
    let issued = api.recorder.issued.lock().unwrap().clone();
    assert_eq!(issued.len(), 2, "{issued:?}");
    for answer in [&a, &b] {
        let i = issued
            .iter()
            .find(|i| answer["id"] == i.access_key_id.as_str())
            .unwrap_or_else(|| panic!("{answer} was not issued: {issued:?}"));
        assert_eq!(i.function, "worker");
        let n = i
            .access_key_id
            .trim_start_matches("ASIASTRATUS")
            .trim_start_matches('0');
        assert_eq!(answer["secret"], format!("secret-{n}"));
        assert_eq!(answer["token"], format!("token-{n}"));
        // The issuer sees the role's policy, references resolved.
        let policy = stratus_iam::Policy::parse(i.policy.as_deref().unwrap()).unwrap();
        assert!(policy.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:000000000000:svc-dev-Jobs"
        ));
        assert!(!policy.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:000000000000:other"
        ));
        assert!(!policy.allows("lambda:InvokeFunction", "*"));
    }
    assert!(api.recorder.revoked.lock().unwrap().is_empty());

    // Deleting the function ends its environments, and with them their credentials.
    let (status, _) = api
        .json("DELETE", "/2015-03-31/functions/worker", Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let keys: Vec<String> = issued.iter().map(|i| i.access_key_id.clone()).collect();
    wait_revoked(&api, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_function_without_statements_gets_credentials_and_no_policy() {
    let api = Api::start().await;
    let (last, _) = api
        .deploy(
            &zip_of("handler.py", PYTHON),
            function("py", "python3.11", "handler.handler"),
            manifest_with(json!([]), "py"),
        )
        .await;
    assert_eq!(last["type"], "done", "{last}");
    let out = api.invoke("py").await;
    let issued = api.recorder.issued.lock().unwrap().clone();
    assert_eq!(issued.len(), 1);
    assert_eq!(out["id"], issued[0].access_key_id.as_str(), "{out}");
    assert!(
        out["token"].as_str().unwrap().starts_with("token-"),
        "{out}"
    );
    assert_eq!(issued[0].policy, None);
    api.json("DELETE", "/2015-03-31/functions/py", Value::Null)
        .await;
    wait_revoked(&api, &[issued[0].access_key_id.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_statement_fails_the_deployment_before_anything_is_deployed() {
    let api = Api::start().await;
    let statements = json!([
        { "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*" },
        { "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*",
          "Condition": { "Bool": { "aws:SecureTransport": "true" } } },
    ]);
    let (last, _) = api
        .deploy(
            &zip_of("index.js", NODE),
            function("bad", "nodejs20.x", "index.handler"),
            manifest_with(statements, "bad"),
        )
        .await;
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["step"], "validate");
    let message = last["message"].as_str().unwrap();
    assert!(
        message.starts_with("function bad: execution role: provider.iam.role.statements: Statement[1]: Condition is not supported by Stratus"),
        "{message}"
    );
    let (status, _) = api
        .json("GET", "/2015-03-31/functions/bad", Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An explicit policy in the request is checked too.
    let mut f = function("bad2", "nodejs20.x", "index.handler");
    f["rolePolicy"] =
        json!(r#"{"Statement":[{"Effect":"Allow","Action":"Invoke","Resource":"*"}]}"#);
    let (last, _) = api.deploy(&zip_of("index.js", NODE), f, Value::Null).await;
    assert_eq!(last["type"], "error", "{last}");
    assert!(
        last["message"].as_str().unwrap().contains(
            "execution role policy: MalformedPolicyDocument: Statement[0].Action: action `Invoke`"
        ),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_references_are_reported_as_warnings() {
    let api = Api::start().await;
    let statements = json!([
        { "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": { "Fn::GetAtt": ["Table", "Arn"] } },
        { "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*" },
    ]);
    let (last, steps) = api
        .deploy(
            &zip_of("index.js", NODE),
            function("warned", "nodejs20.x", "index.handler"),
            manifest_with(statements, "warned"),
        )
        .await;
    assert_eq!(last["type"], "done", "{last}");
    assert!(
        steps
            .iter()
            .any(|s| s
                .starts_with("warning: provider.iam.role.statements[0].Resource: cannot resolve")),
        "{steps:?}"
    );
}

const RESERVED: &str = "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_environment_variables_are_refused_by_the_api_and_by_deployments() {
    let api = Api::start().await;
    let zip = base64::engine::general_purpose::STANDARD.encode(zip_of("index.js", NODE));
    for key in stratus_rules::RESERVED_ENV_VARS {
        let (status, body) = api
            .json(
                "POST",
                "/2015-03-31/functions",
                json!({
                    "FunctionName": "f", "Runtime": "nodejs20.x", "Handler": "index.handler",
                    "Role": "arn:aws:iam::000000000000:role/r",
                    "Code": { "ZipFile": zip },
                    "Environment": { "Variables": { *key: "mine" } },
                }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {body}");
        if key.starts_with('_') {
            // Lambda's key pattern `[a-zA-Z]([a-zA-Z0-9_])+` refuses these first.
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("'{key}' is invalid")),
                "{message}"
            );
        } else {
            assert_eq!(body["message"], format!("{RESERVED}{key}"), "{key}");
        }
    }
    let (status, _) = api
        .json(
            "POST",
            "/2015-03-31/functions",
            json!({
                "FunctionName": "f", "Runtime": "nodejs20.x", "Handler": "index.handler",
                "Role": "arn:aws:iam::000000000000:role/r", "Code": { "ZipFile": zip },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api
        .json(
            "PUT",
            "/2015-03-31/functions/f/configuration",
            json!({ "Environment": { "Variables": { "AWS_SESSION_TOKEN": "x" } } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], format!("{RESERVED}AWS_SESSION_TOKEN"));

    let mut f = function("g", "nodejs20.x", "index.handler");
    f["environment"] = json!({ "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1" });
    let (last, _) = api.deploy(&zip_of("index.js", NODE), f, Value::Null).await;
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(
        last["message"],
        format!("function g: {RESERVED}AWS_LAMBDA_RUNTIME_API")
    );
    let (status, _) = api
        .json("GET", "/2015-03-31/functions/g", Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
