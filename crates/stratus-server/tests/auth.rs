//! Temporary session credentials through the real authentication middleware over
//! HTTP: an `ASIA…` key works only with its session token and stops working the
//! moment it is revoked (what execution environments will be handed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use stratus_auth::Credentials;
use stratus_server::ServerConfig;

/// Sends a signed `GET /2015-03-31/functions` and returns (status, error type).
async fn list_functions(addr: std::net::SocketAddr, creds: &Credentials) -> (u16, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let path = "/2015-03-31/functions";
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    stratus_auth::sign::sign_request(
        creds,
        "us-east-1",
        "lambda",
        "GET",
        path,
        None,
        &mut headers,
        b"",
        time::OffsetDateTime::now_utc(),
    );
    let mut req = http::Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    *req.headers_mut() = headers;
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let _ = resp.into_body().collect().await;
    (status, kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_credentials_need_their_token_and_die_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    let server = stratus_server::start(cfg).await.unwrap();
    let addr = server.addr();
    let session = server.auth().issue_session(
        "my-function",
        vec![stratus_server::auth::ADMIN_POLICY.to_string()],
        None,
    );
    let creds = session.credentials.clone();
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert_eq!(list_functions(addr, &creds).await, (200, String::new()));

    let no_token = Credentials {
        session_token: None,
        ..creds.clone()
    };
    assert_eq!(
        list_functions(addr, &no_token).await,
        (403, "UnrecognizedClientException".into())
    );
    let wrong_token = Credentials {
        session_token: Some("not-the-token".into()),
        ..creds.clone()
    };
    assert_eq!(
        list_functions(addr, &wrong_token).await,
        (403, "UnrecognizedClientException".into())
    );

    assert!(server.auth().revoke_session(&creds.access_key_id));
    assert_eq!(
        list_functions(addr, &creds).await,
        (403, "UnrecognizedClientException".into())
    );
    server.shutdown().await;
}
