//! The HTTP gateway end to end: `http` (REST, payload 1.0) and `httpApi` (payload 2.0)
//! events and function URLs deployed from serverless.yml, served on `--gateway`.

mod common;

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
exports.rest = async (event) => ({
  statusCode: 201,
  headers: { 'x-custom': 'yes' },
  multiValueHeaders: { 'set-cookie': ['a=1', 'b=2'] },
  body: JSON.stringify({ event }),
});
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

    // Errors: malformed response and function error → 502, unknown route → 404.
    let r = client.call("POST", "/broken", &[], "").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        serde_json::json!({"message": "Internal server error"})
    );
    assert_eq!(
        client.call("GET", "/fail", &[], "").await.unwrap().status,
        502
    );
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
