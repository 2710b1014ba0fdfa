//! The sequence the server runs for a request ([`stratus_gateway::serve`]),
//! end to end without a socket, with a stand-in for the invocation:
//! preflight, lookup, size limit, event, invocation, response mapping, CORS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use serde_json::Value;
use stratus_gateway::{CorsConfig, GatewayError, RouteSpec, RouteTable};

/// [`stratus_gateway::serve`], as the server calls it, with `invoke`
/// standing in for the scheduler: it gets the function's name and the event,
/// and returns the function's result payload or the gateway error the
/// server would map the invocation's failure to.
fn serve(
    table: &RouteTable,
    request: Request<Vec<u8>>,
    invoke: impl FnOnce(&str, &Value) -> Result<Vec<u8>, GatewayError>,
) -> Response<Bytes> {
    let request = request.map(|body| Full::new(Bytes::from(body)));
    let served = stratus_gateway::serve(
        table,
        request,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "000000000000",
        |route, payload| {
            let event: Value = serde_json::from_slice(&payload).unwrap();
            std::future::ready(invoke(route.function(), &event).map(Bytes::from))
        },
    );
    block_on(served)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn table() -> RouteTable {
    let specs = vec![
        RouteSpec::rest("GET", "/users/{id}", "dev", "svc-dev-getUser")
            .with_cors(CorsConfig::serverless_default(["GET"])),
        RouteSpec::rest("ANY", "/admin/{proxy+}", "dev", "svc-dev-admin"),
        RouteSpec::http_api("POST", "/orders", "svc-dev-createOrder"),
        RouteSpec::function_url("svc-dev-hook"),
    ];
    match RouteTable::new(specs) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

fn request(method: Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request<Vec<u8>> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match builder.body(body.to_vec()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn header<'a>(r: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn rest_get_with_cors() {
    let t = table();
    let r = serve(
        &t,
        request(
            Method::GET,
            "/dev/users/7",
            &[("origin", "https://app.test")],
            b"",
        ),
        |function, event| {
            assert_eq!(function, "svc-dev-getUser");
            assert_eq!(event["pathParameters"]["id"], "7");
            assert_eq!(event["resource"], "/users/{id}");
            Ok(br#"{"statusCode":200,"body":"{\"id\":7}"}"#.to_vec())
        },
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), br#"{"id":7}"#);
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(header(&r, "x-amzn-requestid").map(str::len), Some(36));
}

#[test]
fn preflight_does_not_invoke() {
    let t = table();
    let r = serve(
        &t,
        request(
            Method::OPTIONS,
            "/dev/users/7",
            &[
                ("origin", "https://app.test"),
                ("access-control-request-method", "GET"),
            ],
            b"",
        ),
        |_, _| panic!("a preflight must not invoke the function"),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("OPTIONS,GET")
    );
}

#[test]
fn unknown_routes_answer_as_their_api() {
    let t = table();
    let never = |_: &str, _: &Value| -> Result<Vec<u8>, GatewayError> { panic!("no invocation") };
    let r = serve(&t, request(Method::POST, "/dev/users/7", &[], b""), never);
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.body().as_ref(),
        br#"{"message": "Missing Authentication Token"}"#
    );
    let r = serve(&t, request(Method::GET, "/orders", &[], b""), never);
    assert_eq!(r.status(), 404);
    assert_eq!(r.body().as_ref(), br#"{"message":"Not Found"}"#);
}

#[test]
fn http_api_simplified_result_and_function_errors() {
    let t = table();
    let r = serve(
        &t,
        request(
            Method::POST,
            "/orders",
            &[("content-type", "application/json")],
            br#"{"n":1}"#,
        ),
        |function, event| {
            assert_eq!(function, "svc-dev-createOrder");
            assert_eq!(event["body"], r#"{"n":1}"#);
            assert_eq!(event["routeKey"], "POST /orders");
            Ok(br#"{"created":true}"#.to_vec())
        },
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), br#"{"created":true}"#);
    assert_eq!(header(&r, "apigw-requestid").map(str::len), Some(16));

    let r = serve(&t, request(Method::POST, "/orders", &[], b""), |_, _| {
        Err(GatewayError::FunctionError)
    });
    assert_eq!(r.status(), 500, "an HTTP API answers 500, not 502");
    assert_eq!(r.body().as_ref(), br#"{"message":"Internal Server Error"}"#);

    let r = serve(&t, request(Method::POST, "/orders", &[], b""), |_, _| {
        Err(GatewayError::Timeout)
    });
    assert_eq!(r.status(), 504);
}

#[test]
fn function_url_gets_the_rest_of_the_path() {
    let t = table();
    let r = serve(
        &t,
        request(
            Method::DELETE,
            "/lambda-url/svc-dev-hook/items/3?force=1",
            &[],
            b"",
        ),
        |function, event| {
            assert_eq!(function, "svc-dev-hook");
            assert_eq!(event["rawPath"], "/items/3");
            assert_eq!(event["queryStringParameters"]["force"], "1");
            assert_eq!(event["requestContext"]["http"]["method"], "DELETE");
            Ok(br#"{"statusCode":204}"#.to_vec())
        },
    );
    assert_eq!(r.status(), 204);
    assert!(r.body().is_empty());
}

#[test]
fn oversized_bodies_are_refused_before_invoking() {
    let t = table();
    let big = vec![b'a'; 6 * 1024 * 1024 + 1];
    let r = serve(
        &t,
        request(Method::POST, "/lambda-url/svc-dev-hook/", &[], &big),
        |_, _| panic!("no invocation"),
    );
    assert_eq!(r.status(), 413);
    assert_eq!(r.body().as_ref(), br#"{"message":"Request Too Long"}"#);
}

#[test]
fn gateway_errors_carry_cors_headers_where_aws_sends_them() {
    let cors = CorsConfig {
        allow_origins: vec!["https://app.test".into()],
        allow_methods: vec!["GET".into(), "POST".into()],
        ..CorsConfig::default()
    };
    let t = match RouteTable::new(vec![
        RouteSpec::http_api("POST", "/orders", "svc-dev-createOrder").with_cors(cors),
        RouteSpec::rest("GET", "/users/{id}", "dev", "svc-dev-getUser")
            .with_cors(CorsConfig::serverless_default(["GET"])),
    ]) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let origin = [("origin", "https://app.test")];
    let allow = |r: &Response<Bytes>| header(r, "access-control-allow-origin").map(str::to_string);

    // HTTP API: function error, timeout, throttle and 413 carry the API's CORS.
    for (error, status) in [
        (GatewayError::FunctionError, 500),
        (GatewayError::Timeout, 504),
        (GatewayError::TooManyRequests, 429),
    ] {
        let r = serve(
            &t,
            request(Method::POST, "/orders", &origin, b""),
            |_, _| Err(error.clone()),
        );
        assert_eq!(r.status(), status);
        assert_eq!(allow(&r).as_deref(), Some("https://app.test"), "{error:?}");
    }
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let r = serve(
        &t,
        request(Method::POST, "/orders", &origin, &big),
        |_, _| panic!("no invocation"),
    );
    assert_eq!(r.status(), 413);
    assert_eq!(allow(&r).as_deref(), Some("https://app.test"));
    // …and its unknown paths: a preflight is answered, a 404 carries CORS.
    let r = serve(
        &t,
        request(
            Method::OPTIONS,
            "/not/a/route",
            &[
                ("origin", "https://app.test"),
                ("access-control-request-method", "POST"),
            ],
            b"",
        ),
        |_, _| panic!("a preflight must not invoke"),
    );
    assert_eq!(r.status(), 204);
    assert_eq!(allow(&r).as_deref(), Some("https://app.test"));
    assert_eq!(header(&r, "access-control-allow-methods"), Some("GET,POST"));
    let r = serve(
        &t,
        request(Method::GET, "/not/a/route", &origin, b""),
        |_, _| panic!("no route"),
    );
    assert_eq!(r.status(), 404);
    assert_eq!(allow(&r).as_deref(), Some("https://app.test"));

    // REST API with `cors: true`: the function's successes get CORS, the
    // gateway's own 502 does not (no GatewayResponse configured).
    let r = serve(
        &t,
        request(Method::GET, "/dev/users/1", &origin, b""),
        |_, _| Err(GatewayError::FunctionError),
    );
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.body().as_ref(),
        br#"{"message": "Internal server error"}"#
    );
    assert_eq!(allow(&r), None);
}

#[test]
fn malformed_results_answer_as_function_errors() {
    let cors = CorsConfig {
        allow_origins: vec!["https://app.test".into()],
        ..CorsConfig::default()
    };
    let t = RouteTable::new(vec![
        RouteSpec::http_api("POST", "/orders", "svc-dev-createOrder").with_cors(cors),
        RouteSpec::rest("GET", "/users/{id}", "dev", "svc-dev-getUser")
            .with_cors(CorsConfig::serverless_default(["GET"])),
    ])
    .unwrap();
    let origin = [("origin", "https://app.test")];
    let r = serve(
        &t,
        request(Method::POST, "/orders", &origin, b""),
        |_, _| Ok(br#"{"statusCode":"two hundred"}"#.to_vec()),
    );
    assert_eq!(r.status(), 500);
    assert_eq!(r.body().as_ref(), br#"{"message":"Internal Server Error"}"#);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.test")
    );
    let r = serve(
        &t,
        request(Method::GET, "/dev/users/1", &origin, b""),
        |_, _| Ok(b"not json".to_vec()),
    );
    assert_eq!(r.status(), 502);
    assert_eq!(
        header(&r, "x-amzn-errortype"),
        Some("InternalServerErrorException")
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

#[test]
fn invoke_gets_the_route_and_the_event_names_the_account() {
    let t = RouteTable::new(vec![
        RouteSpec::http_api("GET", "/ping", "svc-dev-ping").with_qualifier("provisioned")
    ])
    .unwrap();
    let mut seen = None;
    let served = stratus_gateway::serve(
        &t,
        request(Method::GET, "/ping", &[], b"").map(|b| Full::new(Bytes::from(b))),
        "10.1.2.3".parse().unwrap(),
        "123456789012",
        |route, payload| {
            seen = Some((
                route.function().to_string(),
                route.qualifier().map(str::to_string),
                serde_json::from_slice::<Value>(&payload).unwrap(),
            ));
            std::future::ready(Ok(Bytes::from_static(b"\"pong\"")))
        },
    );
    let r = block_on(served);
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"\"pong\"");
    let (function, qualifier, event) = seen.unwrap();
    assert_eq!(function, "svc-dev-ping");
    assert_eq!(qualifier.as_deref(), Some("provisioned"));
    assert_eq!(event["requestContext"]["accountId"], "123456789012");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "10.1.2.3");
    assert_eq!(
        event["requestContext"]["apiId"],
        stratus_gateway::ids::stable_id("svc-dev-ping", 10)
    );
}

/// A body that fails after its first chunk, as when the client goes away.
struct Broken(bool);

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let first = !self.0;
        self.0 = true;
        std::task::Poll::Ready(Some(if first {
            Ok(http_body::Frame::data(Bytes::from_static(b"{\"par")))
        } else {
            Err(std::io::ErrorKind::ConnectionReset.into())
        }))
    }
}

#[test]
fn a_body_that_does_not_arrive_is_not_passed_on() {
    let t = table();
    let request = Request::post("/orders").body(Broken(false)).unwrap();
    let served = stratus_gateway::serve(
        &t,
        request,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "000000000000",
        |_, _| -> std::future::Ready<Result<Bytes, GatewayError>> {
            panic!("no invocation with half a body")
        },
    );
    let r = block_on(served);
    assert_eq!(r.status(), 413);
}
