//! The per-environment HTTP listener: turns Runtime API requests into calls on the
//! environment's [`EnvLink`].

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::protocol::{headers as h, ErrorBody, Route};
use crate::{CompleteError, EnvLink, NextInvocation, Outcome};

/// One environment's Runtime API listener. Dropping it closes the listener and every
/// connection on it.
#[derive(Debug)]
pub struct RuntimeListener {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeListener {
    /// Binds `ip:0` and serves the Runtime API for `link` until dropped.
    pub async fn bind(ip: std::net::IpAddr, link: EnvLink) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, link));
        Ok(Self { addr, task })
    }

    /// Serves the Runtime API for `link` on a listener bound elsewhere (inside an
    /// environment's network namespace) until dropped.
    pub fn from_std(listener: std::net::TcpListener, link: EnvLink) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, link));
        Ok(Self { addr, task })
    }

    /// The `host:port` to put in `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RuntimeListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, link: EnvLink) {
    // Connections live in the JoinSet so that aborting this task ends them too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let link = link.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(link.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

type Resp = Response<Full<Bytes>>;

async fn handle(link: EnvLink, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let route = Route::parse(&method, &path);
    let limit = route.body_limit();
    Ok(match route {
        Route::Next => next(&link).await,
        Route::InitError => {
            let header_type = header_str(&req, h::FUNCTION_ERROR_TYPE);
            match read_body(req, limit).await {
                Ok(body) => {
                    if link.init_error(ErrorBody::parse(&body, header_type.as_deref())) {
                        accepted()
                    } else {
                        json_error(
                            StatusCode::FORBIDDEN,
                            "InvalidStateTransition",
                            "init/error is only allowed before the first invocation/next",
                        )
                    }
                }
                Err(r) => r,
            }
        }
        Route::Response { request_id } => response(&link, request_id, req, limit).await,
        Route::Error { request_id } => error(&link, request_id, req, limit).await,
        Route::Unknown => json_error(
            StatusCode::NOT_FOUND,
            "UnknownPath",
            &format!("no Runtime API route {method} {path}"),
        ),
    })
}

async fn next(link: &EnvLink) -> Resp {
    let inv = match link.next() {
        Ok(NextInvocation::Now(inv)) => inv,
        Ok(NextInvocation::Wait(rx)) => match rx.await {
            Ok(inv) => inv,
            Err(_) => {
                return json_error(
                    StatusCode::GONE,
                    "EnvironmentShutdown",
                    "the execution environment is shutting down",
                )
            }
        },
        Err(reason) => return json_error(StatusCode::GONE, "EnvironmentShutdown", &reason),
    };
    if !link.fetched(&inv) {
        // The environment was declared dead first; the event goes elsewhere.
        return json_error(
            StatusCode::GONE,
            "EnvironmentShutdown",
            "the execution environment is shutting down",
        );
    }
    let mut resp = Response::new(Full::new(inv.payload));
    let hm = resp.headers_mut();
    hm.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            hm.insert(name, v);
        }
    };
    put(h::REQUEST_ID, &inv.request_id);
    put(h::DEADLINE_MS, itoa::Buffer::new().format(inv.deadline_ms));
    put(h::INVOKED_FUNCTION_ARN, &inv.invoked_function_arn);
    put(h::TRACE_ID, &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        put(h::CLIENT_CONTEXT, cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        put(h::COGNITO_IDENTITY, ci);
    }
    resp
}

async fn response(link: &EnvLink, id: &str, req: Request<Incoming>, limit: usize) -> Resp {
    match read_body(req, limit).await {
        Ok(body) => complete(link, id, Outcome::Response(body)),
        Err(too_large) if too_large.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let _ = complete(link, id, Outcome::ResponseTooLarge);
            too_large
        }
        Err(other) => other,
    }
}

async fn error(link: &EnvLink, id: &str, req: Request<Incoming>, limit: usize) -> Resp {
    let header_type = header_str(&req, h::FUNCTION_ERROR_TYPE);
    match read_body(req, limit).await {
        Ok(body) => complete(
            link,
            id,
            Outcome::Error(ErrorBody::parse(&body, header_type.as_deref())),
        ),
        Err(r) => r,
    }
}

fn complete(link: &EnvLink, id: &str, outcome: Outcome) -> Resp {
    match link.complete(id, outcome) {
        Ok(()) => accepted(),
        Err(CompleteError::AlreadyDone) => json_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            &format!("invocation {id} has already been answered"),
        ),
        Err(CompleteError::Unknown) => json_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!(
                "unknown request id {id}: it is not the invocation in progress in this environment"
            ),
        ),
    }
}

fn header_str(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Function.ResponseSizeTooLarge",
                &format!(
                    "Response payload size exceeded maximum allowed payload size ({limit} bytes)."
                ),
            ))
        }
        Err(e) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("cannot read request body: {e}"),
        )),
    }
}

fn accepted() -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_error(status: StatusCode, error_type: &str, message: &str) -> Resp {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
