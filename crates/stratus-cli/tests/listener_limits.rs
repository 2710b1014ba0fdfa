//! Listener hardening (issue 8, part 6) against the real binary with short limits set
//! by flags, driven by raw TCP clients that misbehave: a slowloris sending its head a
//! byte at a time, an oversized head, a body that stalls, a crowd of idle
//! connections beyond the connection cap, an idle kept-alive connection, and a TLS
//! handshake that never finishes. Each is closed in time while other clients are
//! served, and a long request is never cut by the keep-alive timer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short limits so the tests take seconds.
const LIMITS: &[&str] = &[
    "--header-read-timeout",
    "3",
    "--body-read-timeout",
    "1",
    "--keep-alive-timeout",
    "1",
    "--max-connections",
    "20",
    "--max-header-bytes",
    "8192",
    "--tls-handshake-timeout",
    "1",
];

/// [`LIMITS`] for tests that speak raw, unsigned HTTP past the signature check to a
/// handler (a body read, a long invocation): the listener's rules are the same with
/// authentication on, where an unsigned request is refused before its body is read.
fn raw_limits() -> Vec<&'static str> {
    let mut flags = LIMITS.to_vec();
    flags.push("--no-auth");
    flags
}

async fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(&s.addr).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset) or `limit` passes;
/// returns what was read and when the close came.
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            tcp.read(&mut buf),
        )
        .await
        {
            Err(_) => return (String::from_utf8_lossy(&out).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into(),
                    Some(started.elapsed()),
                )
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn healthy(s: &Server) {
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        s.api.call("GET", "/stratus/v1/health", &[], ""),
    )
    .await
    .expect("served in time")
    .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_is_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), LIMITS).await;
    let mut tcp = connect(&s).await;
    let head = b"GET /stratus/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut closed_after = None;
    let mut served_meanwhile = false;
    for b in head.iter() {
        if tcp.write_all(&[*b]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        // A peek that sees EOF means the server has closed its end.
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(100), tcp.peek(&mut probe)).await
        {
            closed_after = Some(started.elapsed());
            break;
        }
        // Others are served meanwhile.
        if !served_meanwhile && started.elapsed() > Duration::from_secs(1) {
            healthy(&s).await;
            served_meanwhile = true;
        }
    }
    let closed_after = closed_after.expect("the server closed the slow connection");
    assert!(served_meanwhile);
    assert!(
        closed_after >= Duration::from_millis(2500) && closed_after < Duration::from_secs(8),
        "closed after {closed_after:?} (header timeout 3 s)"
    );
    healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_gets_431_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), LIMITS).await;
    let mut tcp = connect(&s).await;
    let big = "a".repeat(64 * 1024);
    let req = format!("GET /stratus/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before it has read everything; that is fine.
    let _ = tcp.write_all(req.as_bytes()).await;
    let (reply, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "closed");
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
    // Within the limit is fine.
    let mut tcp = connect(&s).await;
    let ok = format!(
        "GET /stratus/v1/health HTTP/1.1\r\nHost: x\r\nX-Fine: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(4000)
    );
    tcp.write_all(ok.as_bytes()).await.unwrap();
    let (reply, _) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &raw_limits()).await;
    for path in [
        "/2015-03-31/functions",
        "/2015-03-31/functions/any/invocations",
    ] {
        let mut tcp = connect(&s).await;
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(b"{\"FunctionName\":").await.unwrap();
        let (reply, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
        let closed = closed.expect("closed");
        assert!(reply.starts_with("HTTP/1.1 408"), "{path}: {reply}");
        assert!(reply.contains("stopped arriving"), "{reply}");
        assert!(closed >= Duration::from_millis(900), "{closed:?}");
    }
    healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_are_closed_and_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), LIMITS).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(connect(&s).await);
    }
    // With 20 slots and idle connections closed after 1 s, a real request waits
    // behind at most five rounds of them.
    let started = Instant::now();
    healthy(&s).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    let closes = idle
        .into_iter()
        .map(|mut tcp| async move { read_until_closed(&mut tcp, Duration::from_secs(20)).await.1 });
    for closed in join_all(closes.collect()).await {
        assert!(closed.is_some(), "every idle connection is closed");
    }
    healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_but_long_requests_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &raw_limits()).await;
    let mut tcp = connect(&s).await;
    tcp.write_all(b"GET /stratus/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (reply, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let closed = closed.expect("the idle kept-alive connection is closed");
    // The keep-alive timer (1 s), not the header timer (3 s).
    assert!(closed < Duration::from_millis(2500), "{closed:?}");

    // An invocation that runs longer than the keep-alive timeout, on a connection
    // kept alive, is answered; the connection then closes once idle.
    s.create_ok(
        "sleepy",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({ "Timeout": 30 }),
    )
    .await;
    let body = json!({ "action": "sleep", "ms": 2500 }).to_string();
    let mut tcp = connect(&s).await;
    let req = format!(
        "POST /2015-03-31/functions/sleepy/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let (reply, closed) = read_until_closed(&mut tcp, Duration::from_secs(30)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("\"slept\":2500") || reply.contains("\"slept\": 2500"),
        "{reply}"
    );
    assert!(closed.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_stalls_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = LIMITS.to_vec();
    flags.push("--tls-self-signed");
    let data = dir.path().join("data");
    let mut s = Server::start(&data, &flags).await;
    // The harness reads the https URL's address as it would an http one.
    s.addr = s.addr.trim_start_matches("https://").to_string();
    s.api = Api::with_transport(
        &format!("https://{}", s.addr),
        &stratus_cli::transport::Transport::new(Some(&data.join("tls/ca.pem")), false).unwrap(),
    );
    let mut tcp = connect(&s).await;
    // The first byte of a TLS handshake record, then nothing.
    tcp.write_all(&[0x16]).await.unwrap();
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    let closed = closed.expect("closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "{closed:?}"
    );
    healthy(&s).await;
}
