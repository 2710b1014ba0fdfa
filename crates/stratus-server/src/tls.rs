//! TLS for the client-facing listeners (issue 8, encryption in transit): the rustls
//! server configuration (ring provider; TLS 1.3 only unless 1.2 is allowed), loading
//! a PEM certificate chain and key, and `--tls-self-signed`: a local CA and a
//! certificate for this machine's loopback names, made once under `{data-dir}/tls/`
//! and reused on later starts.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only (the default).
    #[default]
    Tls13,
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// A PEM certificate chain (leaf first) and its PEM private key.
    Files {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// A local CA and a certificate it signs for localhost, 127.0.0.1, ::1 and the
    /// listen addresses, kept in `{data-dir}/tls/`.
    SelfSigned,
}

/// TLS on the API and gateway listeners.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The certificate.
    pub source: TlsSource,
    /// The oldest version accepted.
    pub min_version: TlsVersion,
}

/// Errors setting TLS up; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or holds no usable PEM item.
    #[error("TLS {what} {path}: {reason}")]
    File {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate and key (e.g. they do not belong together).
    #[error("TLS certificate {cert} with key {key}: {reason}")]
    Config {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls said.
        reason: String,
    },
    /// The self-signed certificate could not be made or stored.
    #[error("cannot prepare the self-signed certificate in {dir}: {reason}")]
    SelfSigned {
        /// `{data-dir}/tls`.
        dir: String,
        /// What went wrong.
        reason: String,
    },
}

/// TLS ready to serve.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// The certificate a client should trust, for a self-signed set-up.
    pub(crate) ca: Option<PathBuf>,
}

/// Loads (or, self-signed, makes) the certificate and builds the acceptor.
/// `listen` are the addresses served, named in a self-signed certificate.
pub(crate) fn prepare(
    settings: &TlsSettings,
    data_dir: &Path,
    listen: &[IpAddr],
) -> Result<Prepared, TlsError> {
    let (cert, key, ca) = match &settings.source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone(), None),
        TlsSource::SelfSigned => {
            let dir = data_dir.join("tls");
            let s = self_signed(&dir, listen).map_err(|reason| TlsError::SelfSigned {
                dir: dir.display().to_string(),
                reason,
            })?;
            (s.cert, s.key, Some(s.ca))
        }
    };
    let config = server_config(&cert, &key, settings.min_version)?;
    Ok(Prepared {
        config: Arc::new(config),
        ca,
    })
}

/// The rustls configuration for a certificate chain and key file.
fn server_config(
    cert: &Path,
    key: &Path,
    min: TlsVersion,
) -> Result<rustls::ServerConfig, TlsError> {
    let file_err = |what: &'static str, path: &Path, reason: String| TlsError::File {
        what,
        path: path.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("certificate", cert, pem_reason(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("certificate", cert, pem_reason(e)))?;
    if chain.is_empty() {
        return Err(file_err(
            "certificate",
            cert,
            "no PEM CERTIFICATE block in the file".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        file_err(
            "private key",
            key,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key block (PKCS#8, PKCS#1 or SEC1) in the file".into()
                }
                e => pem_reason(e),
            },
        )
    })?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let config_err = |e: rustls::Error| TlsError::Config {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason: e.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(config_err)?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(config_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        e => format!("not valid PEM ({e:?})"),
    }
}

/// The files of a self-signed set-up.
#[derive(Debug)]
struct SelfSigned {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// The CA's name; it is rebuilt from these parameters on every start (the CA
/// certificate on disk is what clients trust, its key is what signs).
fn ca_params() -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Stratus local CA");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Stratus");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// The names a self-signed certificate covers: the loopback names, the listen
/// addresses that are not wildcards, and this host's name.
fn names(listen: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for ip in listen {
        if !ip.is_unspecified() {
            names.push(ip.to_string());
        }
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            names.push(host.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Makes (first start) or reuses the CA and certificate under `dir`. The CA is
/// kept as long as its files exist, so clients that trust it keep working; the
/// certificate is made again when the names it must cover change or it nears its
/// end.
fn self_signed(dir: &Path, listen: &[IpAddr]) -> Result<SelfSigned, String> {
    let out = SelfSigned {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let ca_key_path = dir.join("ca-key.pem");
    let meta_path = dir.join("cert.json");
    create_private_dir(dir)?;
    let wanted = names(listen);
    let now = time::OffsetDateTime::now_utc();

    let ca_key = match std::fs::read_to_string(&ca_key_path) {
        Ok(pem) if out.ca.is_file() => {
            rcgen::KeyPair::from_pem(&pem).map_err(|e| format!("{}: {e}", ca_key_path.display()))?
        }
        _ => {
            let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
            let mut params = ca_params();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(3650);
            let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
            write_file(&ca_key_path, key.serialize_pem().as_bytes(), true)?;
            write_file(&out.ca, cert.pem().as_bytes(), false)?;
            // A new CA: any certificate from an earlier one is void.
            let _ = std::fs::remove_file(&meta_path);
            key
        }
    };

    // Reuse the certificate when it covers the names and has a month left.
    if let Ok(meta) = std::fs::read_to_string(&meta_path) {
        if let Ok(meta) = serde_json::from_str::<serde_json::Value>(&meta) {
            let covered: Vec<String> = meta["names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let fresh = meta["notAfter"]
                .as_i64()
                .is_some_and(|t| t > (now + time::Duration::days(30)).unix_timestamp());
            if fresh
                && wanted.iter().all(|n| covered.contains(n))
                && out.cert.is_file()
                && out.key.is_file()
            {
                return Ok(out);
            }
        }
    }

    let issuer = rcgen::Issuer::new(ca_params(), ca_key);
    let mut params = rcgen::CertificateParams::new(wanted.clone()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Stratus server");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(365);
    params.not_after = not_after;
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
    let ca_pem =
        std::fs::read_to_string(&out.ca).map_err(|e| format!("{}: {e}", out.ca.display()))?;
    write_file(&out.key, key.serialize_pem().as_bytes(), true)?;
    // The chain the server sends: its certificate, then the CA's.
    write_file(
        &out.cert,
        format!("{}{ca_pem}", cert.pem()).as_bytes(),
        false,
    )?;
    let meta = serde_json::json!({ "names": wanted, "notAfter": not_after.unix_timestamp() });
    write_file(&meta_path, meta.to_string().as_bytes(), false)?;
    Ok(out)
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Writes `path` whole through a temporary file and a rename; keys are created
/// 0600 from the start, never readable by others even for a moment.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let a = self_signed(&tls, &["127.0.0.1".parse().unwrap()]).unwrap();
        let ca1 = std::fs::read(&a.ca).unwrap();
        let cert1 = std::fs::read(&a.cert).unwrap();
        for key in [&a.key, &tls.join("ca-key.pem")] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let b = self_signed(&tls, &["127.0.0.1".parse().unwrap()]).unwrap();
        assert_eq!(std::fs::read(&b.cert).unwrap(), cert1, "same names: reused");
        // A new listen address: a new certificate from the same CA.
        let c = self_signed(&tls, &["10.9.8.7".parse().unwrap()]).unwrap();
        assert_ne!(std::fs::read(&c.cert).unwrap(), cert1);
        assert_eq!(std::fs::read(&c.ca).unwrap(), ca1);
        server_config(&c.cert, &c.key, TlsVersion::Tls13).unwrap();
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &empty, TlsVersion::Tls13).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = server_config(&empty, &empty, TlsVersion::Tls13).unwrap_err();
        assert!(e.to_string().contains("no PEM CERTIFICATE"), "{e}");
        let s = self_signed(&dir.path().join("tls"), &[]).unwrap();
        let e = server_config(&s.cert, &empty, TlsVersion::Tls13).unwrap_err();
        assert!(e.to_string().contains("no PEM private key"), "{e}");
        // The CA's key does not belong to the server certificate.
        let e = server_config(
            &s.cert,
            &dir.path().join("tls/ca-key.pem"),
            TlsVersion::Tls13,
        )
        .unwrap_err();
        assert!(e.to_string().contains("with key"), "{e}");
    }
}
