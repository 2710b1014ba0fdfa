//! The Runtime API over real HTTP: the happy path and every wrong-state request a
//! runtime can make.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use stratus_runtime_api::{EnvLink, InitOutcome, Invocation, Outcome, RuntimeListener};

type C = Client<HttpConnector, Full<Bytes>>;

async fn call(c: &C, method: &str, url: String, body: Vec<u8>) -> (u16, http::HeaderMap, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn invocation(id: &str) -> Invocation {
    Invocation {
        request_id: Arc::from(id),
        payload: Bytes::from_static(b"{\"k\":1}"),
        deadline_ms: 1_700_000_000_000,
        invoked_function_arn: Arc::from("arn:aws:lambda:us-east-1:000000000000:function:f"),
        trace_id: Arc::from("Root=1-0-0"),
        client_context: Some(Arc::from("{\"custom\":{}}")),
        cognito_identity: None,
    }
}

#[tokio::test]
async fn next_response_error_and_wrong_states() {
    let (link, ready) = EnvLink::new();
    let listener = RuntimeListener::bind([127, 0, 0, 1].into(), link.clone())
        .await
        .unwrap();
    let base = format!("http://{}/2018-06-01/runtime", listener.addr());
    let c: C = Client::builder(TokioExecutor::new()).build(HttpConnector::new());

    // Dispatch before /next: queued until the runtime asks.
    let rx = link.dispatch(invocation("req-1"));
    let (status, headers, body) = call(&c, "GET", format!("{base}/invocation/next"), vec![]).await;
    assert!(
        matches!(ready.await.unwrap(), InitOutcome::Ready),
        "first /next ends init"
    );
    assert_eq!(status, 200);
    assert_eq!(body, "{\"k\":1}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["lambda-runtime-aws-request-id"], "req-1");
    assert_eq!(headers["lambda-runtime-deadline-ms"], "1700000000000");
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f"
    );
    assert_eq!(headers["lambda-runtime-client-context"], "{\"custom\":{}}");

    // Wrong ids.
    let (status, _, body) = call(
        &c,
        "POST",
        format!("{base}/invocation/other/response"),
        b"1".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("InvalidRequestID") && body.contains("unknown request id other"),
        "{body}"
    );
    let (status, _, _) = call(
        &c,
        "POST",
        format!("{base}/invocation/req-1/response"),
        b"\"ok\"".to_vec(),
    )
    .await;
    assert_eq!(status, 202);
    match rx.await.unwrap() {
        Outcome::Response(b) => assert_eq!(&b[..], b"\"ok\""),
        other => panic!("{other:?}"),
    }
    let (status, _, body) = call(
        &c,
        "POST",
        format!("{base}/invocation/req-1/response"),
        b"\"again\"".to_vec(),
    )
    .await;
    assert_eq!(status, 403, "a second answer is refused: {body}");
    assert!(body.contains("already been answered"));
    let (status, _, _) = call(&c, "POST", format!("{base}/init/error"), b"{}".to_vec()).await;
    assert_eq!(status, 403, "init/error after init is a wrong state");

    // /next parks until an invocation arrives; errors accept Node's `trace`.
    let c2 = c.clone();
    let base2 = base.clone();
    let parked =
        tokio::spawn(
            async move { call(&c2, "GET", format!("{base2}/invocation/next"), vec![]).await },
        );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!parked.is_finished());
    let rx = link.dispatch(invocation("req-2"));
    assert_eq!(parked.await.unwrap().0, 200);
    let err = br#"{"errorType":"TypeError","errorMessage":"x","trace":["at a","at b"]}"#.to_vec();
    let (status, _, _) = call(&c, "POST", format!("{base}/invocation/req-2/error"), err).await;
    assert_eq!(status, 202);
    match rx.await.unwrap() {
        Outcome::Error(e) => {
            assert_eq!(e.error_type, "TypeError");
            assert_eq!(e.stack_trace.len(), 2);
        }
        other => panic!("{other:?}"),
    }

    // Oversized response: 413 to the runtime, ResponseTooLarge to the invoker.
    let rx = link.dispatch(invocation("req-3"));
    assert_eq!(
        call(&c, "GET", format!("{base}/invocation/next"), vec![])
            .await
            .0,
        200
    );
    let (status, _, body) = call(
        &c,
        "POST",
        format!("{base}/invocation/req-3/response"),
        vec![b'x'; 6 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(status, 413);
    assert!(body.contains("Function.ResponseSizeTooLarge"));
    assert!(matches!(rx.await.unwrap(), Outcome::ResponseTooLarge));

    // Unknown paths.
    let (status, _, body) = call(&c, "GET", format!("{base}/nothing"), vec![]).await;
    assert_eq!(status, 404, "{body}");

    // Death: an invocation the runtime fetched completes with Exited, one it never
    // fetched with NotStarted, and /next is refused.
    let rx = link.dispatch(invocation("req-4"));
    let (status, _, _) = call(&c, "GET", format!("{base}/invocation/next"), vec![]).await;
    assert_eq!(status, 200);
    link.fail("exit status 1");
    assert!(matches!(rx.await.unwrap(), Outcome::Exited(r) if r == "exit status 1"));
    let rx = link.dispatch(invocation("req-5"));
    assert!(matches!(rx.await.unwrap(), Outcome::NotStarted(r) if r == "exit status 1"));
    let (status, _, _) = call(&c, "GET", format!("{base}/invocation/next"), vec![]).await;
    assert_eq!(status, 410);
}

#[tokio::test]
async fn init_error_is_reported_with_its_body() {
    let (link, ready) = EnvLink::new();
    let listener = RuntimeListener::bind([127, 0, 0, 1].into(), link.clone())
        .await
        .unwrap();
    let c: C = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let url = format!("http://{}/2018-06-01/runtime/init/error", listener.addr());
    let body = br#"{"errorType":"Runtime.ImportModuleError","errorMessage":"Unable to import module 'x'","stackTrace":[]}"#.to_vec();
    assert_eq!(call(&c, "POST", url, body).await.0, 202);
    match ready.await.unwrap() {
        InitOutcome::Failed(e) => {
            assert_eq!(e.error_type, "Runtime.ImportModuleError");
            assert_eq!(e.error_message, "Unable to import module 'x'");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn from_std_serves_a_listener_bound_elsewhere() {
    // Bound by someone else (the sandbox binds inside an environment's namespace).
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = std_listener.local_addr().unwrap();
    let (link, ready) = EnvLink::new();
    let listener = RuntimeListener::from_std(std_listener, link.clone()).unwrap();
    assert_eq!(listener.addr(), bound);
    let c: C = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let rx = link.dispatch(invocation("req-s"));
    let base = format!("http://{bound}/2018-06-01/runtime");
    let (status, _, body) = call(&c, "GET", format!("{base}/invocation/next"), vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "{\"k\":1}");
    assert!(matches!(ready.await.unwrap(), InitOutcome::Ready));
    let (status, _, _) = call(
        &c,
        "POST",
        format!("{base}/invocation/req-s/response"),
        b"done".to_vec(),
    )
    .await;
    assert_eq!(status, 202);
    assert!(matches!(rx.await.unwrap(), Outcome::Response(b) if b == "done"));
    drop(listener);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        std::net::TcpStream::connect(bound).is_err(),
        "closed on drop"
    );
}

#[tokio::test]
async fn an_event_no_runtime_fetched_is_not_started() {
    let (link, _ready) = EnvLink::new();
    let listener = RuntimeListener::bind([127, 0, 0, 1].into(), link.clone())
        .await
        .unwrap();
    let base = format!("http://{}/2018-06-01/runtime", listener.addr());
    let c: C = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    // One invocation handled, then the runtime exits without asking for another.
    let rx = link.dispatch(invocation("one"));
    let (status, _, _) = call(&c, "GET", format!("{base}/invocation/next"), vec![]).await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        &c,
        "POST",
        format!("{base}/invocation/one/response"),
        b"1".to_vec(),
    )
    .await;
    assert_eq!(status, 202);
    assert!(matches!(rx.await.unwrap(), Outcome::Response(_)));
    let rx = link.dispatch(invocation("two"));
    link.fail("exit status 0");
    assert!(matches!(rx.await.unwrap(), Outcome::NotStarted(r) if r == "exit status 0"));

    // A runtime parked in /next whose connection dies before the event arrives.
    let (link, _ready) = EnvLink::new();
    let listener = RuntimeListener::bind([127, 0, 0, 1].into(), link.clone())
        .await
        .unwrap();
    let url = format!(
        "http://{}/2018-06-01/runtime/invocation/next",
        listener.addr()
    );
    let parked = tokio::spawn(async move {
        let c: C = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        call(&c, "GET", url, vec![]).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    parked.abort();
    let _ = parked.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rx = link.dispatch(invocation("three"));
    link.fail("signal: killed");
    assert!(matches!(rx.await.unwrap(), Outcome::NotStarted(_)));
}
