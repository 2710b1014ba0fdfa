//! The HTTP gateway end to end: `http` (REST, payload 1.0) and `httpApi` (payload 2.0)
//! events and function URLs deployed from serverless.yml, served on `--gateway`,
//! with their CORS settings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::Path;

use common::*;

use common::stratus_ok as stratus;
use serde_json::Value;

const SERVICE: &str = "service: web
provider:
  name: aws
  runtime: nodejs20.x
functions:
  rest:
    handler: h.rest
    events:
      - http:
          path: users/{id}
          method: get
          cors: true
      - http: POST /files/{proxy+}
  api:
    handler: h.api
    url:
      cors:
        allowedOrigins:
          - https://x.example
    events:
      - httpApi: 'GET /items/{id}'
      - httpApi: 'POST /broken'
      - httpApi: 'GET /fail'
";

const HANDLERS: &str = r#"
exports.rest = async (event) => {
  if (event.path === '/users/fail') throw new Error('rest boom');
  return {
  statusCode: 201,
  headers: { 'x-custom': 'yes' },
  multiValueHeaders: { 'set-cookie': ['a=1', 'b=2'] },
  body: JSON.stringify({ event }),
  };
};
exports.api = async (event) => {
  if (event.rawPath === '/broken') return { statusCode: 'nope' };
  if (event.rawPath === '/fail') throw new Error('boom');
  return { seen: event };
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_events_are_served_with_lambda_proxy_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &["--gateway", "127.0.0.1:0"]).await;
    let ep = format!("http://{}", s.addr);
    let gw = s.gateway.clone().expect("gateway url");
    let dir = tmp.path().join("web");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("serverless.yml"), SERVICE).unwrap();
    std::fs::write(dir.join("h.js"), HANDLERS).unwrap();
    stratus(&dir, &ep, &["deploy"]).await;
    let info = stratus(&dir, &ep, &["info"]).await;
    assert!(
        info.contains(&format!("GET - {gw}/dev/users/{{id}}")),
        "{info}"
    );

    let client = Api::new(&gw);
    // REST, payload 1.0, under the stage.
    let r = client
        .call(
            "GET",
            "/dev/users/42?x=1&x=2&y=3",
            &[("user-agent", "t"), ("origin", "https://a.example")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-custom"), Some("yes"));
    assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
    assert!(r.header("x-amzn-requestid").is_some());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let e: Value = serde_json::from_slice::<Value>(&r.body).unwrap()["event"].clone();
    assert_eq!(e["resource"], "/users/{id}");
    assert_eq!(e["path"], "/users/42");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(e["pathParameters"]["id"], "42");
    assert_eq!(e["queryStringParameters"]["x"], "2");
    assert_eq!(
        e["multiValueQueryStringParameters"]["x"],
        serde_json::json!(["1", "2"])
    );
    assert_eq!(e["requestContext"]["stage"], "dev");
    assert_eq!(e["requestContext"]["resourcePath"], "/users/{id}");
    assert_eq!(e["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(e["isBase64Encoded"], false);
    // Greedy path, body.
    let r = client
        .call(
            "POST",
            "/dev/files/a/b/c.txt",
            &[("content-type", "text/plain")],
            "hello",
        )
        .await
        .unwrap();
    let e: Value = serde_json::from_slice::<Value>(&r.body).unwrap()["event"].clone();
    assert_eq!(e["pathParameters"]["proxy"], "a/b/c.txt");
    assert_eq!(e["body"], "hello");
    // CORS preflight answered without invoking.
    let r = client
        .call(
            "OPTIONS",
            "/dev/users/1",
            &[
                ("origin", "https://a.example"),
                ("access-control-request-method", "GET"),
            ],
            "",
        )
        .await
        .unwrap();
    assert!(r.status < 300, "{}", r.status);
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("GET")));

    // HTTP API, payload 2.0, simplified response.
    let r = client
        .call("GET", "/items/7?a=1&a=2", &[("cookie", "c1=v1; c2=v2")], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("apigw-requestid").is_some());
    let e = serde_json::from_slice::<Value>(&r.body).unwrap()["seen"].clone();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /items/{id}");
    assert_eq!(e["rawPath"], "/items/7");
    assert_eq!(e["rawQueryString"], "a=1&a=2");
    assert_eq!(e["queryStringParameters"]["a"], "1,2");
    assert_eq!(e["cookies"], serde_json::json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["pathParameters"]["id"], "7");
    assert_eq!(e["requestContext"]["http"]["method"], "GET");

    // Errors behind the HTTP API: malformed response and function error → 500
    // "Internal Server Error" (an HTTP API's words), unknown route → 404.
    let r = client.call("POST", "/broken", &[], "").await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(&r.body[..], br#"{"message":"Internal Server Error"}"#);
    assert!(r.header("apigw-requestid").is_some());
    let r = client.call("GET", "/fail", &[], "").await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(&r.body[..], br#"{"message":"Internal Server Error"}"#);
    // Behind the REST API: 502 "Internal server error", and no CORS headers on
    // the gateway's own error even with `cors: true`.
    let r = client
        .call(
            "GET",
            "/dev/users/fail",
            &[("origin", "https://a.example")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(&r.body[..], br#"{"message": "Internal server error"}"#);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InternalServerErrorException")
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(
        client
            .call("GET", "/nothing-here", &[], "")
            .await
            .unwrap()
            .status,
        404
    );

    // Function URL.
    let r = client
        .call(
            "GET",
            "/lambda-url/web-dev-api/some/path?q=1",
            &[("origin", "https://x.example")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://x.example"),
        "the URL's CORS settings apply"
    );
    let e = serde_json::from_slice::<Value>(&r.body).unwrap()["seen"].clone();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["rawPath"], "/some/path");
    // A function error behind the function URL: 502 "Internal Server Error",
    // with the URL's CORS headers.
    let r = client
        .call(
            "GET",
            "/lambda-url/web-dev-api/fail",
            &[("origin", "https://x.example")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(&r.body[..], b"Internal Server Error");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://x.example")
    );

    // A deleted function's routes go with it.
    let r = s
        .api
        .call("DELETE", "/2015-03-31/functions/web-dev-api", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        client
            .call("GET", "/items/7", &[], "")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        client
            .call("GET", "/dev/users/1", &[], "")
            .await
            .unwrap()
            .status,
        201,
        "other functions keep theirs"
    );
}

/// A handler that logs each invocation and sends CORS headers of its own, which
/// an HTTP API with CORS replaces.
const CORS_HANDLER: &str = r#"
exports.api = async (event) => {
  console.log(`invoked ${event.requestContext.http.method} ${event.rawPath}`);
  if (event.rawPath === '/items/boom') throw new Error('boom');
  return {
    statusCode: 200,
    headers: { 'access-control-allow-origin': 'https://fn.example', 'x-total': '3' },
    body: JSON.stringify({ ok: true }),
  };
};
"#;

/// Deploys `yml` with [`CORS_HANDLER`] as `h.js` to a fresh server with a gateway.
async fn deploy_cors_service(tmp: &Path, yml: &str) -> (Server, Api) {
    let s = Server::start(&tmp.join("data"), &["--gateway", "127.0.0.1:0"]).await;
    let ep = format!("http://{}", s.addr);
    let gw = Api::new(&s.gateway.clone().expect("gateway url"));
    let dir = tmp.join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("serverless.yml"), yml).unwrap();
    std::fs::write(dir.join("h.js"), CORS_HANDLER).unwrap();
    stratus(&dir, &ep, &["deploy"]).await;
    (s, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_cors_true_answers_preflights_at_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, gw) = deploy_cors_service(
        tmp.path(),
        "service: open
provider:
  name: aws
  runtime: nodejs20.x
  httpApi:
    cors: true
functions:
  api:
    handler: h.api
    events:
      - httpApi: 'GET /items/{id}'
      - httpApi: 'POST /items'
",
    )
    .await;

    let preflight = gw
        .call(
            "OPTIONS",
            "/items/1",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "content-type"),
            ],
            "",
        )
        .await
        .unwrap();
    assert_eq!(preflight.status, 204, "the gateway answers the preflight");
    assert!(preflight.body.is_empty());
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("OPTIONS,GET,POST"),
        "OPTIONS and the methods of the service's httpApi routes"
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Content-Type") && h.contains("X-Amzn-Trace-Id")),
        "{:?}",
        preflight.headers
    );
    assert!(preflight.header("apigw-requestid").is_some());

    let r = gw
        .call("GET", "/items/1", &[("origin", "https://app.example")], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("*"),
        "the API's CORS headers replace the function's"
    );
    assert_eq!(json_body(&r), serde_json::json!({"ok": true}));

    // The API answers preflights to paths no route serves, and its own errors
    // (a 404, a function error's 500) carry its CORS headers.
    let preflight = gw
        .call(
            "OPTIONS",
            "/no/such/route",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "DELETE"),
            ],
            "",
        )
        .await
        .unwrap();
    assert_eq!(
        preflight.status,
        204,
        "{}",
        String::from_utf8_lossy(&preflight.body)
    );
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("OPTIONS,GET,POST")
    );
    let r = gw
        .call(
            "GET",
            "/no/such/route",
            &[("origin", "https://app.example")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(&r.body[..], br#"{"message":"Not Found"}"#);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = gw
        .call(
            "GET",
            "/items/boom",
            &[("origin", "https://app.example")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(&r.body[..], br#"{"message":"Internal Server Error"}"#);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    // Only the two GETs to routes reached the function.
    let logs = s.wait_logs("open-dev-api", "REPORT", 2).await;
    assert_eq!(count(&logs, "invoked GET /items/1"), 1, "{logs:#?}");
    assert_eq!(count(&logs, "invoked GET /items/boom"), 1, "{logs:#?}");
    assert_eq!(count(&logs, "invoked OPTIONS"), 0, "{logs:#?}");
    assert_eq!(count(&logs, "START RequestId"), 2, "{logs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_cors_allows_only_the_listed_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, gw) = deploy_cors_service(
        tmp.path(),
        "service: strict
provider:
  name: aws
  runtime: nodejs20.x
  httpApi:
    cors:
      allowedOrigins: https://app.example
      allowedHeaders: [Content-Type, Authorization]
      allowedMethods: [GET]
      allowCredentials: true
      exposedResponseHeaders: x-total
      maxAge: 600
functions:
  api:
    handler: h.api
    events:
      - httpApi: 'GET /things'
",
    )
    .await;
    let preflight_from = |origin: &'static str| {
        let gw = gw.clone();
        async move {
            gw.call(
                "OPTIONS",
                "/things",
                &[("origin", origin), ("access-control-request-method", "GET")],
                "",
            )
            .await
            .unwrap()
        }
    };

    let ok = preflight_from("https://app.example").await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("Content-Type,Authorization")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));

    let foreign = preflight_from("https://evil.example").await;
    assert_eq!(foreign.status, 204);
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    assert_eq!(foreign.header("access-control-allow-methods"), None);

    let r = gw
        .call("GET", "/things", &[("origin", "https://app.example")], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-total"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    // A foreign origin still reaches the function, but gets no CORS headers,
    // not even the function's own.
    let r = gw
        .call("GET", "/things", &[("origin", "https://evil.example")], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("x-total"), Some("3"));
}
