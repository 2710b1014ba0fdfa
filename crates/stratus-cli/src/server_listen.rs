//! The `stratus server` flags for TLS and the client-facing listeners' limits
//! (issue 8, parts 4 and 6), and how they become the server's configuration.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use stratus_server::listen::Limits;
use stratus_server::tls::{TlsSettings, TlsSource, TlsVersion};
use stratus_server::ServerConfig;

/// TLS and connection limits of the API and gateway listeners.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListenArgs {
    /// Serve the API and the gateway over TLS with this PEM certificate chain
    /// (leaf first); needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "STRATUS_TLS_CERT"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "STRATUS_TLS_KEY"
    )]
    tls_key: Option<PathBuf>,
    /// Serve over TLS with a certificate for localhost, 127.0.0.1, ::1 and the
    /// listen address, signed by a local CA made once in {data-dir}/tls/ (trust
    /// {data-dir}/tls/ca.pem in clients).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Oldest TLS version accepted: 1.3 (default) or 1.2.
    #[arg(long, value_name = "VERSION", default_value = "1.3", value_parser = ["1.2", "1.3"])]
    tls_min_version: String,
    /// Most bytes of a request's head (request line and headers); past it 431.
    #[arg(long, default_value_t = 32 * 1024, value_name = "BYTES")]
    max_header_bytes: usize,
    /// Seconds a client has to send a request's head (also the longest wait for the
    /// next request on a kept-alive connection).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    header_read_timeout: f64,
    /// Seconds a request body may stall (no bytes arriving) before the request
    /// fails with 408.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    body_read_timeout: f64,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    keep_alive_timeout: f64,
    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    tls_handshake_timeout: f64,
    /// Most connections served at once per listener; more wait to be accepted.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_connections: usize,
}

/// Seconds from a flag; anything under a millisecond (or not a number) is taken as
/// one millisecond, so no timer is zero.
fn secs(v: f64) -> Duration {
    if v.is_finite() && v > 0.001 {
        Duration::from_secs_f64(v.min(1e9))
    } else {
        Duration::from_millis(1)
    }
}

impl ListenArgs {
    /// Puts these settings into `cfg`.
    pub(crate) fn apply(&self, cfg: &mut ServerConfig) {
        let min_version = if self.tls_min_version == "1.2" {
            TlsVersion::Tls12
        } else {
            TlsVersion::Tls13
        };
        let source = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ if self.tls_self_signed => Some(TlsSource::SelfSigned),
            _ => None,
        };
        cfg.tls = source.map(|source| TlsSettings {
            source,
            min_version,
        });
        cfg.limits = Limits {
            max_header_bytes: self.max_header_bytes.max(1),
            header_read_timeout: secs(self.header_read_timeout),
            body_idle_timeout: secs(self.body_read_timeout),
            keep_alive_timeout: secs(self.keep_alive_timeout),
            max_connections: self.max_connections.max(1),
            tls_handshake_timeout: secs(self.tls_handshake_timeout),
        };
    }
}
