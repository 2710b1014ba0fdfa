//! A small HTTP/1.1 client for talking to a Stratus server (keep-alive pooled; TLS
//! and the plain-HTTP rule are `transport`'s). Every request is signed by
//! [`crate::signing`] before it leaves.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::transport::{Connector, Transport};

/// A response: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// Header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A client for one endpoint.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    client: Client<Connector, Full<Bytes>>,
    signer: std::sync::Arc<crate::signing::Signer>,
}

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:9000`) with the process's
    /// [`Transport`] (the binary's `--ca-bundle`/`--insecure`), signing with the
    /// credentials the environment provides.
    pub fn new(base: &str) -> Self {
        Self::with_transport(base, &Transport::default_for_process())
    }

    /// A client for `base` over `transport`, signing with the environment's credentials.
    pub fn with_transport(base: &str, transport: &Transport) -> Self {
        Self::with_parts(base, transport, crate::signing::Signer::from_environment())
    }

    /// A client for `base` with the process's transport, signing with `signer`.
    pub fn with_signer(base: &str, signer: crate::signing::Signer) -> Self {
        Self::with_parts(base, &Transport::default_for_process(), signer)
    }

    /// A client for `base` over `transport`, signing with `signer`.
    pub fn with_parts(base: &str, transport: &Transport, signer: crate::signing::Signer) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(transport.connector());
        Self {
            base: base.trim_end_matches('/').to_string(),
            client,
            signer: std::sync::Arc::new(signer),
        }
    }

    /// Sends a request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = self.signed(req, body.into())?;
        let resp = self.client.request(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.check_auth(status, &headers)?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a request and hands each line of the (streamed) response body to
    /// `on_line` as it arrives. Returns the status.
    pub async fn call_lines(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        mut on_line: impl FnMut(&str),
    ) -> anyhow::Result<u16> {
        use hyper::body::Body as _;
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let req = self.signed(req, body.into())?;
        let resp = self.client.request(req).await?;
        let status = resp.status().as_u16();
        self.check_auth(status, resp.headers())?;
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while !body.is_end_stream() {
            let Some(frame) = body.frame().await else {
                break;
            };
            if let Ok(data) = frame?.into_data() {
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    on_line(String::from_utf8_lossy(&line[..line.len() - 1]).as_ref());
                }
            }
        }
        if !buf.is_empty() {
            on_line(String::from_utf8_lossy(&buf).as_ref());
        }
        Ok(status)
    }

    /// Builds the request and signs it.
    fn signed(
        &self,
        req: http::request::Builder,
        body: Bytes,
    ) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let mut req = req.body(Full::new(Bytes::new()))?;
        let (method, uri) = (req.method().as_str().to_string(), req.uri().clone());
        self.signer.sign(&method, &uri, req.headers_mut(), &body);
        *req.body_mut() = Full::new(body);
        Ok(req)
    }

    /// Turns "not authenticated" answers into an error that says what to do.
    fn check_auth(&self, status: u16, headers: &http::HeaderMap) -> anyhow::Result<()> {
        let kind = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        match self.signer.explain(&self.base, status, kind) {
            Some(msg) => Err(crate::signing::NotAuthenticated(msg).into()),
            None => Ok(()),
        }
    }

    /// Invokes a function synchronously (the integration tests' shorthand).
    #[allow(dead_code)]
    pub async fn invoke(&self, function: &str, payload: &str) -> anyhow::Result<Reply> {
        self.call(
            "POST",
            &format!("/2015-03-31/functions/{function}/invocations"),
            &[],
            payload.to_string(),
        )
        .await
    }
}
