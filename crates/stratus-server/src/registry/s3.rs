//! The shared code store on S3 or any S3-compatible server (`--blobs s3://bucket/prefix`).
//!
//! Design:
//! - [`S3Location`] is the URL (`s3://BUCKET[/PREFIX]`) plus what the usual AWS
//!   environment variables say, all checked when the flags are planned (before the
//!   data dir is touched): the endpoint (`AWS_ENDPOINT_URL_S3`, else
//!   `AWS_ENDPOINT_URL`; none means AWS itself), the region (`AWS_REGION`, else
//!   `AWS_DEFAULT_REGION`, else `us-east-1`) and static credentials
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`).
//!   Only those variables are read: nothing else is consulted behind the operator's
//!   back (no instance metadata, no STS). Plain `http://` is accepted for a loopback
//!   endpoint, or anywhere with `AWS_ALLOW_HTTP=true`; otherwise it is refused,
//!   since packages would cross the network in clear.
//! - [`open`] builds `object_store`'s S3 client (feature `aws-base`: request signing
//!   on `ring`) with [`HyperConnector`] as its HTTP transport: hyper-util's client
//!   over hyper-rustls on the ring provider with the system's roots, as the CLI's
//!   transport. `object_store`'s own transport is reqwest with rustls on aws-lc-rs,
//!   which needs cmake and a C toolchain to build; this one adds no crate to the tree.
//! - The transport bounds each request: a connect timeout, a deadline for the
//!   response head, and an idle timeout between body frames (a stalled download
//!   fails, and `object_store` retries it), so a blocked store never holds a
//!   blocking thread for ever.
//!
//! The layout inside the bucket is the file store's (`PREFIX/sha256/ab/abcd…`), and
//! reads are checked against the sha256 exactly as for a directory (`blobs.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use object_store::aws::AmazonS3Builder;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService,
};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore};

/// Where `--blobs s3://…` points, with the settings read from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside it, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// An S3-compatible server's URL; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Whether plain `http://` may be used (a loopback endpoint, or `AWS_ALLOW_HTTP`).
    pub allow_http: bool,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl std::fmt::Debug for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and the session token are never printed.
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Environment variables read, in order of precedence, for the endpoint.
const ENDPOINT_VARS: [&str; 2] = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"];

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]` (`rest` is what follows `s3://`) and reads the
    /// endpoint, region and credentials through `env`. The error is the reason, for
    /// `BlobsError::Url`.
    pub(crate) fn parse(rest: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket)?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            if prefix
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(format!(
                    "the key prefix {prefix:?} has an empty, '.' or '..' part: s3://BUCKET/some/prefix"
                ));
            }
            ObjectPath::parse(prefix)
                .map_err(|e| format!("the key prefix {prefix:?} is not usable: {e}"))?;
        }
        let allow_http_var = match env("AWS_ALLOW_HTTP").as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(format!("AWS_ALLOW_HTTP={v:?}: expected true or false")),
        };
        let mut allow_http = false;
        let endpoint = match ENDPOINT_VARS.iter().find_map(|k| env(k).map(|v| (*k, v))) {
            None => None,
            Some((var, url)) => {
                let loopback = check_endpoint(var, &url)?;
                if url.starts_with("http://") {
                    if !(loopback || allow_http_var) {
                        return Err(format!("{var}={url} is plain http to an address beyond loopback: code packages would cross the network in clear. Use https://, or set AWS_ALLOW_HTTP=true if that network is trusted"));
                    }
                    allow_http = true;
                }
                Some(url.trim_end_matches('/').to_string())
            }
        };
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let (Some(access_key_id), Some(secret_access_key)) =
            (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err("needs credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)".into());
        };
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
            region,
            allow_http,
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    }
}

/// S3's bucket naming rules (3–63 of `a-z 0-9 . -`, starting and ending with a
/// letter or digit).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if (3..=63).contains(&bucket.len())
        && ok_chars
        && ends_ok(bucket.bytes().next())
        && ends_ok(bucket.bytes().last())
    {
        Ok(())
    } else {
        Err(format!("{bucket:?} is not a bucket name (3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit): s3://BUCKET[/PREFIX]"))
    }
}

/// Checks an endpoint URL; says whether its host is loopback.
fn check_endpoint(var: &str, url: &str) -> Result<bool, String> {
    let bad = |reason: &str| format!("{var}={url}: {reason}");
    let uri: http::Uri = url
        .parse()
        .map_err(|_| bad("not a URL (expected http://HOST:PORT or https://HOST)"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("expected an http:// or https:// URL")),
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(bad("no host"));
    };
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(bad(
            "expected only scheme, host and port (the bucket comes from --blobs)",
        ));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

/// Opens the S3 client for `loc` (nothing is sent yet).
pub(crate) fn open(loc: &S3Location) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&loc.bucket)
        .with_region(&loc.region)
        .with_access_key_id(&loc.access_key_id)
        .with_secret_access_key(&loc.secret_access_key)
        .with_allow_http(loc.allow_http)
        .with_http_connector(HyperConnector::default())
        // Fewer and shorter retries than object_store's default (10, for up to 3
        // minutes): a read of a package blocks an invocation, and an unreachable
        // store at start should be said within seconds.
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        });
    if let Some(token) = &loc.session_token {
        b = b.with_token(token);
    }
    if let Some(endpoint) = &loc.endpoint {
        b = b.with_endpoint(endpoint);
    }
    let s3 = b.build()?;
    Ok(if loc.prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(
            s3,
            ObjectPath::from(loc.prefix.as_str()),
        ))
    })
}

/// `object_store`'s HTTP transport for S3: hyper-util's pooled client over
/// hyper-rustls (ring provider, the system's roots).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HyperConnector {
    /// Connecting (TCP) may take this long.
    connect_timeout: Duration,
    /// The response head must arrive within this.
    head_timeout: Duration,
    /// The body may pause this long between frames.
    idle_timeout: Duration,
}

impl Default for HyperConnector {
    fn default() -> Self {
        // object_store's own defaults: 5 s to connect, 30 s per request.
        Self {
            connect_timeout: Duration::from_secs(5),
            head_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl HttpConnector for HyperConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable entries are skipped: a server with an unknown issuer is then
        // refused at the handshake, naming the certificate problem.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut tcp = TcpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(self.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let https = if allow_http {
            builder.https_or_http()
        } else {
            builder.https_only()
        }
        .enable_http1()
        .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(HttpClient::new(HyperService {
            client,
            head_timeout: self.head_timeout,
            idle_timeout: self.idle_timeout,
        }))
    }
}

#[derive(Debug)]
struct HyperService {
    client: Client<HttpsConnector<TcpConnector>, HttpRequestBody>,
    head_timeout: Duration,
    idle_timeout: Duration,
}

/// A request or body that took too long.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TimedOut(String);

#[async_trait::async_trait]
impl HttpService for HyperService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let resp = match tokio::time::timeout(self.head_timeout, self.client.request(req)).await {
            Err(_) => {
                return Err(HttpError::new(
                    HttpErrorKind::Timeout,
                    TimedOut(format!("no response within {:?}", self.head_timeout)),
                ))
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    HttpErrorKind::Connect
                } else {
                    // The connection closed or failed mid-request: safe to retry,
                    // as every request of the code store is idempotent.
                    HttpErrorKind::Request
                };
                return Err(HttpError::new(kind, e));
            }
            Ok(Ok(r)) => r,
        };
        let (parts, body) = resp.into_parts();
        let body = IdleTimeout {
            inner: body,
            idle: self.idle_timeout,
            timer: Box::pin(tokio::time::sleep(self.idle_timeout)),
        };
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// A response body that fails when no frame arrives for `idle`.
struct IdleTimeout {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for IdleTimeout {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(next);
                Poll::Ready(
                    frame.map(|f| f.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e))),
                )
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::new(
                    HttpErrorKind::Timeout,
                    TimedOut(format!("the response body stalled for {:?}", this.idle)),
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    const CREDS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
    ];

    #[test]
    fn parses_bucket_prefix_and_environment() {
        let mut vars = CREDS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"));
        vars.push(("AWS_REGION", "eu-west-3"));
        let loc = S3Location::parse("code-bucket/stratus/blobs/", &env_of(&vars)).unwrap();
        assert_eq!(loc.bucket, "code-bucket");
        assert_eq!(loc.prefix, "stratus/blobs");
        assert_eq!(loc.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(loc.region, "eu-west-3");
        assert!(loc.allow_http);
        assert!(
            !format!("{loc:?}").contains("wJalr"),
            "the secret is printed"
        );

        // AWS_ENDPOINT_URL_S3 wins; no endpoint means AWS, https only; region default.
        vars.push(("AWS_ENDPOINT_URL_S3", "https://s3.example.test"));
        let loc = S3Location::parse("b12", &env_of(&vars)).unwrap();
        assert_eq!(loc.endpoint.as_deref(), Some("https://s3.example.test"));
        assert!(!loc.allow_http);
        assert_eq!(loc.prefix, "");
        let loc = S3Location::parse("b12", &env_of(&CREDS)).unwrap();
        assert_eq!((loc.endpoint, loc.region.as_str()), (None, "us-east-1"));

        // Plain http beyond loopback only when AWS_ALLOW_HTTP says so.
        let mut remote = CREDS.to_vec();
        remote.push(("AWS_ENDPOINT_URL", "http://10.1.2.3:9000"));
        let e = S3Location::parse("b12", &env_of(&remote)).unwrap_err();
        assert!(
            e.contains("in clear") && e.contains("AWS_ALLOW_HTTP"),
            "{e}"
        );
        remote.push(("AWS_ALLOW_HTTP", "true"));
        assert!(
            S3Location::parse("b12", &env_of(&remote))
                .unwrap()
                .allow_http
        );
        let mut v6 = CREDS.to_vec();
        v6.push(("AWS_ENDPOINT_URL", "http://[::1]:9000"));
        assert!(S3Location::parse("b12", &env_of(&v6)).unwrap().allow_http);
    }

    #[test]
    fn bad_input_names_what_is_wrong() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = CREDS.to_vec();
            v.extend_from_slice(extra);
            v
        };
        type Vars = Vec<(&'static str, &'static str)>;
        let cases: Vec<(&str, Vars, &str)> = vec![
            ("Bucket", with(&[]), "not a bucket name"),
            ("ab", with(&[]), "not a bucket name"),
            ("-bucket", with(&[]), "not a bucket name"),
            ("", with(&[]), "not a bucket name"),
            ("bucket/a//b", with(&[]), "empty, '.' or '..'"),
            ("bucket/a/../b", with(&[]), "empty, '.' or '..'"),
            (
                "bucket",
                vec![],
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
            (
                "bucket",
                vec![("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", " ")],
                "AWS_SECRET_ACCESS_KEY",
            ),
            (
                "bucket",
                with(&[("AWS_ENDPOINT_URL", "ftp://h")]),
                "http:// or https://",
            ),
            (
                "bucket",
                with(&[("AWS_ENDPOINT_URL", "not a url")]),
                "not a URL",
            ),
            (
                "bucket",
                with(&[("AWS_ENDPOINT_URL_S3", "https://h/bucket")]),
                "only scheme, host and port",
            ),
            (
                "bucket",
                with(&[("AWS_ALLOW_HTTP", "yes")]),
                "AWS_ALLOW_HTTP",
            ),
        ];
        for (rest, vars, says) in cases {
            let e = S3Location::parse(rest, &env_of(&vars)).unwrap_err();
            assert!(e.contains(says), "s3://{rest} {vars:?}: {e}");
            assert!(!e.contains("wJalr"), "the secret is printed: {e}");
        }
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        // The transport itself refuses http:// when the store does not allow it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let chain_of = |allow_http: bool| {
            let options = ClientOptions::new().with_allow_http(allow_http);
            let client = HyperConnector::default().connect(&options).unwrap();
            // Nothing listens on port 9 (discard).
            let req = http::Request::get("http://127.0.0.1:9/b/k")
                .body(HttpRequestBody::empty())
                .unwrap();
            let e = rt.block_on(client.execute(req)).unwrap_err();
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(" / {s}"));
                source = s.source();
            }
            (e.kind(), chain)
        };
        let (kind, chain) = chain_of(false);
        assert_eq!(kind, HttpErrorKind::Connect, "{chain}");
        assert!(chain.contains("unsupported scheme http"), "{chain}");
        // Allowed, it is tried (and refused by the closed port).
        let (kind, chain) = chain_of(true);
        assert_eq!(kind, HttpErrorKind::Connect, "{chain}");
        assert!(!chain.contains("scheme"), "{chain}");
    }
}
