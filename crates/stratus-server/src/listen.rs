//! The client-facing listeners (the API and the HTTP gateway): the accept loop, TLS,
//! and the limits that keep hostile or broken clients from holding the server's
//! sockets, memory or handlers (issue 8, parts 4 and 6).
//!
//! Each accepted connection runs in its own task with hyper's HTTP/1.1 server:
//! - at most [`Limits::max_connections`] connections at once: past it the loop stops
//!   accepting, so a flood waits in the kernel's backlog instead of taking fds;
//! - a TLS handshake must finish within [`Limits::tls_handshake_timeout`];
//! - a request head larger than [`Limits::max_header_bytes`] answers 431 and the
//!   connection closes; one that takes longer than [`Limits::header_read_timeout`]
//!   (a slowloris) closes the connection;
//! - a request body that makes no progress for [`Limits::body_idle_timeout`] fails
//!   the handler's read and answers 408 (the connection then closes);
//! - a connection with no request in flight and no bytes received for
//!   [`Limits::keep_alive_timeout`] is closed.
//!
//! Shutdown keeps `axum::serve`'s graceful semantics: on the stop signal the socket
//! is closed, every connection finishes its in-flight request and closes, and
//! [`serve`] returns once the last one is gone.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

/// Limits every client-facing listener applies. The defaults suit a server on a
/// network; tests set short timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of a request head (request line and headers); past it 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a whole request head, from the moment the server
    /// starts waiting for it (this includes an idle kept-alive connection's wait for
    /// its next request).
    pub header_read_timeout: Duration,
    /// Time a request body may go without any bytes arriving; past it 408.
    pub body_idle_timeout: Duration,
    /// Time a connection may sit with no request in flight and nothing received.
    pub keep_alive_timeout: Duration,
    /// Most connections served at once on one listener.
    pub max_connections: usize,
    /// Time a client has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 32 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(30),
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// hyper refuses a read buffer under 8 KiB.
const MIN_BUF: usize = 8 * 1024;

/// One bound listener and how to serve it.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The bound socket.
    pub(crate) tcp: TcpListener,
    /// TLS on this listener, when on.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Its limits.
    pub(crate) limits: Limits,
}

/// Serves `app` on `listener` until `stop` turns true, then closes the socket and
/// returns once every connection has finished its in-flight request and closed.
pub(crate) async fn serve(listener: Listener, app: axum::Router, mut stop: watch::Receiver<bool>) {
    let Listener { tcp, tls, limits } = listener;
    let tls = tls.map(TlsAcceptor::from);
    let limits = Arc::new(limits);
    let max =
        u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(max as usize));
    loop {
        // A free slot first: a flood beyond the cap stays in the kernel's backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let (tcp_stream, peer) = tokio::select! {
            r = tcp.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = tcp_stream.set_nodelay(true);
        let (app, limits, tls, stop) = (app.clone(), limits.clone(), tls.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(tcp_stream, peer, false, app, &limits, stop).await,
                Some(acceptor) => {
                    let mut stopping = stop.clone();
                    let handshake = async {
                        if is_plain_http(&tcp_stream).await {
                            refuse_plain_http(tcp_stream).await;
                            return None;
                        }
                        match acceptor.accept(tcp_stream).await {
                            Ok(s) => Some(s),
                            Err(e) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                None
                            }
                        }
                    };
                    let stream = tokio::select! {
                        r = tokio::time::timeout(limits.tls_handshake_timeout, handshake) => match r {
                            Ok(Some(s)) => s,
                            Ok(None) => return,
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        _ = stopped(&mut stopping) => return,
                    };
                    connection(stream, peer, true, app, &limits, stop).await;
                }
            }
        });
    }
    // Stop accepting (connect attempts are refused from here on), then wait for
    // every connection to give its slot back.
    drop(tcp);
    let _ = slots.acquire_many(max).await;
}

/// Whether a connection to a TLS listener starts with plain HTTP (a request line's
/// letter rather than a TLS handshake record).
async fn is_plain_http(tcp: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0].is_ascii_alphabetic())
}

/// Tells a plain-HTTP client that this port speaks TLS, then closes.
async fn refuse_plain_http(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let body = "This port serves HTTPS: use an https:// URL.\n";
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        use tokio::io::AsyncReadExt as _;
        let _ = tcp.write_all(resp.as_bytes()).await;
        let _ = tcp.shutdown().await;
        // Read what the client sent (a little, briefly): closing with unread bytes
        // would reset the connection and could lose the answer on its way.
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Resolves once `stop` is true (the guard `wait_for` returns is dropped here, so
/// callers stay `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// An accept error: per-connection ones are skipped; resource ones (out of fds)
/// pause the loop briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// What one connection's requests and its watchdog share.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Requests whose response has not been fully written.
    in_flight: AtomicUsize,
    /// Milliseconds from `start` of the last bytes received or response finished.
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// Serves one (plain or TLS) connection until it closes.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    tls: bool,
    app: axum::Router,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last: AtomicU64::new(0),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let body_idle = limits.body_idle_timeout;
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let (mut app, activity) = (app.clone(), requests.clone());
        async move {
            let guard = InFlight::begin(activity);
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            if tls {
                // The scheme the client used, for the URLs the API builds from Host.
                parts
                    .headers
                    .insert("x-forwarded-proto", http::HeaderValue::from_static("https"));
            }
            let stalled = Arc::new(AtomicBool::new(false));
            let body = Body::new(IdleBody {
                inner: body,
                timeout: body_idle,
                sleep: None,
                stalled: stalled.clone(),
            });
            let resp = match app.call(http::Request::from_parts(parts, body)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let resp = if stalled.load(Ordering::Relaxed) {
                request_timeout()
            } else {
                resp
            };
            Ok::<_, Infallible>(resp.map(|b| {
                Body::new(Tracked {
                    inner: b,
                    _guard: guard,
                })
            }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF).max(64 * 1024))
        .keep_alive(true);
    let conn = http.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let idle = idle_watch(&activity, limits.keep_alive_timeout);
    let mut idle = std::pin::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = stopped(&mut stop), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = &mut idle, if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Resolves once the connection has had no request in flight and received nothing
/// for `timeout`.
async fn idle_watch(activity: &Activity, timeout: Duration) {
    loop {
        let deadline = activity.last() + timeout;
        if Instant::now() < deadline {
            tokio::time::sleep_until(deadline).await;
        } else if activity.in_flight.load(Ordering::Acquire) == 0 {
            return;
        } else {
            // A request is being served (a long invocation): look again later.
            tokio::time::sleep(timeout).await;
        }
    }
}

/// 408 for a request whose body stalled.
fn request_timeout() -> axum::response::Response {
    let body = serde_json::json!({
        "Type": "User",
        "message": "The request body stopped arriving before it was complete.",
    });
    let mut resp = axum::response::Response::new(Body::from(body.to_string()));
    *resp.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

/// A request counted in flight until its response body is dropped (written whole,
/// or the connection went away).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`].
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails when no bytes arrive for `timeout` while the handler
/// waits for them, and says so through `stalled`.
struct IdleBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl hyper::body::Body for IdleBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Progress: the next wait gets a fresh period.
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.stalled.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(format!(
                        "no request body bytes for {} s",
                        timeout.as_secs_f64()
                    )
                    .into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting when bytes arrive (for the idle watchdog).
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
