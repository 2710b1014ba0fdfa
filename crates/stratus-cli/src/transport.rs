//! How the CLI reaches a server (issue 8, encryption in transit): HTTP/1.1 over TCP,
//! or over TLS (rustls, ring provider) for `https://` endpoints. Certificates are
//! verified against a CA file (`--ca-bundle`, else `AWS_CA_BUNDLE`, as the AWS CLI
//! reads them) or, without one, the system's trusted roots. Plain `http://` is
//! refused to any address that is not loopback unless `--insecure` allows it:
//! requests, and the credentials that sign them, would cross the network in clear.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TLS trust and the plain-HTTP rule for the connections of an [`crate::client::Api`].
#[derive(Debug, Clone)]
pub struct Transport {
    /// `None` only when TLS could not be set up at all (then https is refused with
    /// `tls_error`, plain loopback HTTP still works).
    tls: Option<Arc<rustls::ClientConfig>>,
    tls_error: String,
    insecure: bool,
}

static DEFAULT: OnceLock<Transport> = OnceLock::new();

impl Transport {
    /// Trust `ca_bundle` (PEM, one or more certificates) when given, else the
    /// system's roots; `insecure` allows plain HTTP to non-loopback addresses.
    pub fn new(ca_bundle: Option<&Path>, insecure: bool) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_bundle {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| anyhow::anyhow!("{}", pem_reason(e)))
                    .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
                if certs.is_empty() {
                    anyhow::bail!(
                        "the CA bundle {} holds no PEM CERTIFICATE block",
                        path.display()
                    );
                }
                for c in certs {
                    roots.add(c).with_context(|| {
                        format!(
                            "the CA bundle {} holds a certificate rustls cannot use",
                            path.display()
                        )
                    })?;
                }
            }
            None => {
                // The system's store; unreadable entries are skipped (a server with an
                // unknown issuer is then refused, as it should be).
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: Some(Arc::new(tls)),
            tls_error: String::new(),
            insecure,
        })
    }

    /// Makes `self` what [`crate::client::Api::new`] uses in this process (the
    /// binary sets it once from its global flags).
    pub fn set_default(self) {
        let _ = DEFAULT.set(self);
    }

    /// The process default: as set, else system roots and no plain HTTP beyond
    /// loopback.
    pub fn default_for_process() -> Self {
        match DEFAULT.get() {
            Some(t) => t.clone(),
            None => Self::new(None, false).unwrap_or_else(|e| Self {
                tls: None,
                tls_error: format!("{e:#}"),
                insecure: false,
            }),
        }
    }

    /// Refuses `endpoint` when it is plain HTTP to an address beyond loopback
    /// without `--insecure`, and any scheme but http/https.
    pub fn check_endpoint(&self, endpoint: &str) -> anyhow::Result<()> {
        let uri: http::Uri = endpoint
            .parse()
            .with_context(|| format!("the endpoint {endpoint:?} is not a URL"))?;
        check(&uri, self.insecure).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A connector for hyper's client that applies these rules.
    pub(crate) fn connector(&self) -> Connector {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The https connector gets the URL's scheme; plain `http://` passes through.
        http.enforce_http(false);
        let https = self.tls.as_ref().map(|tls| {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((**tls).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http.clone())
        });
        Connector {
            https,
            http,
            tls_error: self.tls_error.clone(),
            insecure: self.insecure,
        }
    }
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        e => format!("not valid PEM ({e:?})"),
    }
}

/// Whether `host` (a URL's host, IPv6 in brackets) is this machine's loopback.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check(uri: &http::Uri, insecure: bool) -> Result<(), String> {
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = uri.host().unwrap_or_default();
            if insecure || is_loopback(host) {
                Ok(())
            } else {
                Err(format!(
                    "refusing plain HTTP to {host}: it is not a loopback address, so requests \
                     and their credentials would cross the network unencrypted. Use an https:// \
                     endpoint (a server started with --tls-cert/--tls-key or --tls-self-signed), \
                     or pass --insecure to send them anyway"
                ))
            }
        }
        Some(other) => Err(format!(
            "the endpoint scheme {other:?} is not supported: use https:// (or http:// on loopback)"
        )),
        None => Err(format!(
            "the endpoint {uri} has no scheme: use https://HOST:PORT"
        )),
    }
}

/// hyper's connector: plain or TLS by the URL's scheme, after [`check`].
#[derive(Debug, Clone)]
pub struct Connector {
    https: Option<HttpsConnector<HttpConnector>>,
    http: HttpConnector,
    tls_error: String,
    insecure: bool,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.https {
            Some(https) => https.poll_ready(cx),
            None => self.http.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        if let Err(e) = check(&uri, self.insecure) {
            return Box::pin(std::future::ready(Err(e.into())));
        }
        match &mut self.https {
            Some(https) => Box::pin(https.call(uri)),
            None if uri.scheme_str() == Some("https") => {
                let e = format!("TLS is not available: {}", self.tls_error);
                Box::pin(std::future::ready(Err(e.into())))
            }
            None => {
                let connecting = self.http.call(uri);
                Box::pin(async move { Ok(MaybeHttpsStream::Http(connecting.await?)) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_insecure() {
        let t = Transport::new(None, false).unwrap();
        for ok in [
            "http://127.0.0.1:9000",
            "http://127.3.4.5:1",
            "http://localhost:9000",
            "http://[::1]:9000",
            "https://10.1.2.3:1",
            "https://example.com",
        ] {
            t.check_endpoint(ok).unwrap();
        }
        for bad in [
            "http://10.1.2.3:1",
            "http://example.com",
            "http://[2001:db8::1]:80",
        ] {
            let e = t.check_endpoint(bad).unwrap_err().to_string();
            assert!(
                e.contains("--insecure") && e.contains("not a loopback"),
                "{e}"
            );
        }
        assert!(t.check_endpoint("ftp://127.0.0.1").is_err());
        let insecure = Transport::new(None, true).unwrap();
        insecure.check_endpoint("http://10.1.2.3:1").unwrap();
    }

    #[test]
    fn a_bad_ca_bundle_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = format!("{:#}", Transport::new(Some(&missing), false).unwrap_err());
        assert!(e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates\n").unwrap();
        let e = format!("{:#}", Transport::new(Some(&empty), false).unwrap_err());
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
    }
}
