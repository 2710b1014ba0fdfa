//! The bench's load generator: keep-alive HTTP/1.1 callers that send one fixed
//! Invoke request over and over, all on one current-thread runtime on a thread of
//! their own (the way wrk drives a server from one event loop).
//!
//! The CLI's own client (hyper-util's pooled client on the multi-threaded runtime)
//! costs more CPU per call than the server's whole Invoke path, and the caller shares
//! the machine's two cores with the server and the functions; measuring with it would
//! mostly measure it. Each caller here writes the request with one `write` and reads
//! the response with `httparse` and its `Content-Length`, nothing more.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Invoke request for `function` (name and qualifier) with a `{}` event, signed
/// by `signer`. A signature stays valid for 5 minutes, so each phase of the bench
/// builds its request afresh.
pub(super) fn invoke_request(
    addr: SocketAddr,
    function: &str,
    signer: &stratus_cli::signing::Signer,
) -> Arc<[u8]> {
    let path = format!("/2015-03-31/functions/{function}/invocations");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let uri: http::Uri = format!("http://{addr}{path}")
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    signer.sign("POST", &uri, &mut headers, b"{}");
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in &headers {
        if k == http::header::HOST {
            continue;
        }
        req.push_str(k.as_str());
        req.push_str(": ");
        req.push_str(v.to_str().unwrap_or_default());
        req.push_str("\r\n");
    }
    req.push_str("Content-Length: 2\r\n\r\n{}");
    Arc::from(req.into_bytes())
}

/// One keep-alive connection sending `request` again and again.
struct Caller {
    stream: TcpStream,
    request: Arc<[u8]>,
    buf: Vec<u8>,
    filled: usize,
}

impl Caller {
    async fn connect(addr: SocketAddr, request: Arc<[u8]>) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            request,
            buf: vec![0; 16 * 1024],
            filled: 0,
        })
    }

    /// Sends the request and reads the whole response; anything but 200 is an error
    /// carrying the response body.
    async fn call(&mut self) -> anyhow::Result<()> {
        self.call_allowing(&[]).await.map(|_| ())
    }

    /// As [`Self::call`], but a status in `allowed` is returned rather than an error.
    async fn call_allowing(&mut self, allowed: &[u16]) -> anyhow::Result<u16> {
        self.stream.write_all(&self.request).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 24];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = resp.parse(&self.buf[..self.filled])? {
                let status = resp.code.unwrap_or(0);
                let body_len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .context("response without Content-Length")?;
                let total = head_len + body_len;
                while self.filled < total {
                    self.fill().await?;
                }
                let failure = (status != 200 && !allowed.contains(&status)).then(|| {
                    format!(
                        "invoke answered {status}: {}",
                        String::from_utf8_lossy(&self.buf[head_len..total])
                    )
                });
                self.buf.copy_within(total..self.filled, 0);
                self.filled -= total;
                return match failure {
                    Some(msg) => Err(anyhow::anyhow!(msg)),
                    None => Ok(status),
                };
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.filled += n;
        Ok(())
    }
}

/// Runs `f` on a current-thread runtime on a thread of its own and waits for it
/// without blocking the caller's runtime.
async fn on_own_thread<T, F, Fut>(f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f())
    })
    .await?
}

/// Latencies in µs of `n` sequential calls on one connection (after `warmup` calls).
pub(super) async fn sequential(
    addr: SocketAddr,
    request: Arc<[u8]>,
    warmup: u32,
    n: u32,
) -> anyhow::Result<Vec<f64>> {
    on_own_thread(move || async move {
        let mut caller = Caller::connect(addr, request).await?;
        for _ in 0..warmup {
            caller.call().await?;
        }
        let mut lat = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let t = Instant::now();
            caller.call().await?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(lat)
    })
    .await
}

/// `concurrency` callers for `duration`: completed calls per second, and every call's
/// latency in µs.
pub(super) async fn concurrent(
    addr: SocketAddr,
    request: Arc<[u8]>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Vec<f64>)> {
    on_own_thread(move || async move {
        let mut callers = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            callers.push(Caller::connect(addr, request.clone()).await?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut caller in callers {
            let stop = stop.clone();
            tasks.spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    caller.call().await?;
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok::<_, anyhow::Error>(lat)
            });
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done??);
        }
        let rate = all.len() as f64 / started.elapsed().as_secs_f64();
        Ok((rate, all))
    })
    .await
}

/// As [`concurrent`], but a throttled call (429) is counted rather than an error
/// (cluster mode: a node without grants may throttle a sudden burst): the rate and
/// latencies of the calls answered 200, and the number throttled.
pub(super) async fn concurrent_counting_throttles(
    addr: SocketAddr,
    request: Arc<[u8]>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Vec<f64>, u64)> {
    on_own_thread(move || async move {
        let mut callers = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            callers.push(Caller::connect(addr, request.clone()).await?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut caller in callers {
            let stop = stop.clone();
            tasks.spawn(async move {
                let (mut lat, mut throttled) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if caller.call_allowing(&[429]).await? == 429 {
                        throttled += 1;
                    } else {
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
                Ok::<_, anyhow::Error>((lat, throttled))
            });
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let (mut all, mut throttled) = (Vec::new(), 0);
        while let Some(done) = tasks.join_next().await {
            let (lat, t) = done??;
            all.extend(lat);
            throttled += t;
        }
        let rate = all.len() as f64 / started.elapsed().as_secs_f64();
        Ok((rate, all, throttled))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request with the given responses in turn, split
    /// into small writes so that the caller has to reassemble them.
    async fn scripted(responses: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let mut seen = Vec::new();
                while !seen.ends_with(b"{}") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                for chunk in r.as_bytes().chunks(7) {
                    s.write_all(chunk).await.unwrap();
                    s.flush().await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_split_responses_and_reports_errors() {
        let addr = scripted(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 15\r\n\r\nRate Exceeded.!",
        ])
        .await;
        let mut c = Caller::connect(
            addr,
            invoke_request(addr, "f", &stratus_cli::signing::Signer::unsigned()),
        )
        .await
        .unwrap();
        c.call().await.unwrap();
        c.call().await.unwrap();
        let err = c.call().await.unwrap_err().to_string();
        assert!(
            err.contains("429") && err.contains("Rate Exceeded."),
            "{err}"
        );
        let err = c.call().await.unwrap_err().to_string();
        assert!(err.contains("closed"), "{err}");
    }

    #[tokio::test]
    async fn an_allowed_status_is_returned_others_are_errors() {
        let addr = scripted(vec![
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        ])
        .await;
        let mut c = Caller::connect(
            addr,
            invoke_request(addr, "f", &stratus_cli::signing::Signer::unsigned()),
        )
        .await
        .unwrap();
        assert_eq!(c.call_allowing(&[429]).await.unwrap(), 429);
        assert_eq!(c.call_allowing(&[429]).await.unwrap(), 200);
        let err = c.call_allowing(&[429]).await.unwrap_err().to_string();
        assert!(err.contains("500"), "{err}");
    }

    #[tokio::test]
    async fn a_response_without_length_is_an_error() {
        let addr = scripted(vec!["HTTP/1.1 200 OK\r\n\r\n"]).await;
        let mut c = Caller::connect(
            addr,
            invoke_request(addr, "f", &stratus_cli::signing::Signer::unsigned()),
        )
        .await
        .unwrap();
        let err = c.call().await.unwrap_err().to_string();
        assert!(err.contains("Content-Length"), "{err}");
    }
}
