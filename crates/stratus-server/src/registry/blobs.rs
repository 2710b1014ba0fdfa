//! Where code packages live: [`Blobs`].
//!
//! A node always keeps its packages content-addressed under `{data-dir}/blobs`
//! (`stratus_package::BlobStore`), exactly as the single node always has. With
//! `--blobs URL` there is also a *shared* store, reached through the `object_store`
//! crate, that every node of a cluster reads: an upload is written to both; a read
//! takes the local copy when there is one, else fetches the package from the shared
//! store, checks that its bytes hash to the name it was asked by (a package altered
//! or cut short in the shared store is refused, never run) and keeps a local copy.
//!
//! The shared store is a directory (`file:///dir`, `object_store`'s local file
//! system) or an S3 bucket (`s3://bucket/prefix`, any S3-compatible server; see
//! `s3.rs`), with the same layout and the same checks.
//!
//! Every method blocks (the shared store is driven on the runtime through a
//! [`tokio::runtime::Handle`]); it may be called from any thread, an async worker
//! included (it steps aside with `block_in_place`), though callers should prefer a
//! blocking thread, as for the registry's other store calls.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};

/// Errors of the code package stores.
#[derive(Debug, thiserror::Error)]
pub enum BlobsError {
    /// The node-local store failed.
    #[error(transparent)]
    Local(#[from] stratus_package::BlobError),
    /// `--blobs` names a location this build cannot use.
    #[error("--blobs {url}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The shared store could not be opened, read or written.
    #[error("shared code store {url}: cannot {op} package {hash}: {source}")]
    Shared {
        /// The shared store's URL.
        url: String,
        /// What was being done (`read`, `write`, `check`).
        op: &'static str,
        /// The package.
        hash: String,
        /// What the store said.
        source: Box<object_store::Error>,
    },
    /// The shared store holds bytes under a name they do not hash to.
    #[error("code package {hash} in the shared code store {url} is corrupt: its content hashes to {actual} (altered or cut short); it is not run. Upload the package again to repair it")]
    Corrupt {
        /// The shared store's URL.
        url: String,
        /// The name (expected sha256).
        hash: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// No store holds the package.
    #[error("code package {hash} is in neither the local nor the shared code store")]
    NotFound {
        /// The package.
        hash: String,
    },
}

/// Where `--blobs` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobsLocation {
    /// A directory (`file:///dir`), typically a shared mount.
    Dir(PathBuf),
    /// An S3 bucket and key prefix (`s3://bucket/prefix`), with the endpoint, region
    /// and credentials read from the environment.
    S3(super::s3::S3Location),
}

impl BlobsLocation {
    /// Parses a `--blobs` URL: `file:///absolute/dir` or `s3://bucket[/prefix]`
    /// (reading the AWS environment variables, see `s3.rs`). Anything else is
    /// refused, naming what is accepted.
    pub fn parse(url: &str) -> Result<Self, BlobsError> {
        Self::parse_with_env(url, &|k| std::env::var(k).ok())
    }

    /// [`Self::parse`] with the environment read through `env`.
    pub fn parse_with_env(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, BlobsError> {
        let bad = |reason: &str| BlobsError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("a file:// URL needs an absolute path: file:///srv/stratus-blobs (three slashes)"));
            }
            if rest.split('/').any(|c| c == "..") {
                return Err(bad("the path must not contain '..'"));
            }
            let path = percent_encoding::percent_decode_str(rest)
                .decode_utf8()
                .map_err(|_| bad("the path is not valid UTF-8 once %-decoded"))?;
            return Ok(Self::Dir(PathBuf::from(path.as_ref())));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return super::s3::S3Location::parse(rest, env)
                .map(Self::S3)
                .map_err(|r| bad(&r));
        }
        Err(bad(
            "expected file:///absolute/dir (a directory every node of the cluster reads) or s3://bucket[/prefix]",
        ))
    }
}

/// A shared store and how to drive it.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn ObjectStore>,
    url: String,
    rt: tokio::runtime::Handle,
}

impl Shared {
    /// Runs `fut` on the runtime and waits for it, from whatever thread this is: a
    /// plain or blocking thread waits directly; a worker of a multi-threaded runtime
    /// (an async handler asking whether a package exists) steps aside first with
    /// `block_in_place`; a current-thread runtime waits on a helper thread.
    fn wait<T: Send, F: std::future::Future<Output = T> + Send>(&self, fut: F) -> T {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => self.rt.block_on(fut),
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.rt.block_on(fut)),
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
        }
    }
}

/// Code packages: the node-local store, and with `--blobs` the shared one.
#[derive(Debug, Clone)]
pub struct Blobs {
    local: stratus_package::BlobStore,
    shared: Option<Arc<Shared>>,
}

/// The shared store's key of a package: the local layout, `sha256/ab/abcd…`.
fn key(hash: &str) -> ObjectPath {
    ObjectPath::from(format!("sha256/{}/{hash}", &hash[..2]))
}

impl Blobs {
    /// Only the node-local store (the single node, as always).
    pub fn local(local: stratus_package::BlobStore) -> Self {
        Self {
            local,
            shared: None,
        }
    }

    /// The node-local store plus the shared one at `location` (created if absent).
    /// `url` is how the operator wrote it (for messages); `rt` drives the shared
    /// store's calls.
    pub fn with_shared(
        local: stratus_package::BlobStore,
        location: &BlobsLocation,
        url: &str,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, BlobsError> {
        let store: Arc<dyn ObjectStore> = match location {
            BlobsLocation::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| BlobsError::Url {
                    url: url.to_string(),
                    reason: format!("cannot create {}: {e}", dir.display()),
                })?;
                let fs =
                    object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                        BlobsError::Url {
                            url: url.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                Arc::new(fs)
            }
            BlobsLocation::S3(loc) => super::s3::open(loc).map_err(|e| BlobsError::Url {
                url: url.to_string(),
                reason: e.to_string(),
            })?,
        };
        let shared = Shared {
            store,
            url: url.to_string(),
            rt,
        };
        if let BlobsLocation::S3(loc) = location {
            // Reach the bucket once at start, so a wrong endpoint, bucket or key is a
            // start-up error rather than the first deploy's.
            let listed = shared.wait(shared.store.list_with_delimiter(None));
            listed.map_err(|e| BlobsError::Url {
                url: url.to_string(),
                reason: format!(
                    "cannot list bucket {:?} at {} (region {}): {e}",
                    loc.bucket,
                    loc.endpoint.as_deref().unwrap_or("AWS S3"),
                    loc.region
                ),
            })?;
        }
        Ok(Self {
            local,
            shared: Some(Arc::new(shared)),
        })
    }

    /// Whether a shared store is configured.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Stores `bytes` locally and, with a shared store, there too (replacing what
    /// it held under that name, which repairs a corrupt copy). Returns the sha256.
    pub fn put(&self, bytes: &[u8]) -> Result<String, BlobsError> {
        let hash = self.local.put(bytes)?;
        if let Some(s) = &self.shared {
            let payload = PutPayload::from(bytes::Bytes::copy_from_slice(bytes));
            s.wait(
                s.store
                    .put_opts(&key(&hash), payload, PutOptions::default()),
            )
            .map_err(|source| BlobsError::Shared {
                url: s.url.clone(),
                op: "write",
                hash: hash.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(hash)
    }

    /// Whether the package is stored, locally or in the shared store.
    pub fn contains(&self, hash: &str) -> bool {
        if self.local.contains(hash) {
            return true;
        }
        match &self.shared {
            Some(s) if stratus_package::is_sha256_hex(hash) => {
                let head = GetOptions::new().with_head(true);
                s.wait(s.store.get_opts(&key(hash), head)).is_ok()
            }
            _ => false,
        }
    }

    /// The package's bytes: the local copy, else the shared store's after checking
    /// their sha256 (and then kept locally).
    pub fn get(&self, hash: &str) -> Result<Vec<u8>, BlobsError> {
        match self.local.get(hash) {
            Ok(b) => return Ok(b),
            Err(stratus_package::BlobError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(s) = &self.shared else {
            return Err(BlobsError::NotFound { hash: hash.into() });
        };
        let fetched = s.wait(async {
            let r = s.store.get_opts(&key(hash), GetOptions::default()).await?;
            r.bytes().await
        });
        let bytes = match fetched {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobsError::NotFound { hash: hash.into() })
            }
            Err(source) => {
                return Err(BlobsError::Shared {
                    url: s.url.clone(),
                    op: "read",
                    hash: hash.into(),
                    source: Box::new(source),
                })
            }
        };
        let actual = stratus_package::sha256_hex(&bytes);
        if actual != hash {
            return Err(BlobsError::Corrupt {
                url: s.url.clone(),
                hash: hash.into(),
                actual,
            });
        }
        self.local.put(&bytes)?;
        Ok(bytes.to_vec())
    }

    /// The path of the package's local copy, fetched from the shared store first
    /// when this node has none.
    pub fn local_path(&self, hash: &str) -> Result<PathBuf, BlobsError> {
        let path = self.local.path(hash)?;
        if !path.is_file() && self.shared.is_some() {
            self.get(hash)?;
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            BlobsLocation::parse("file:///srv/blobs").unwrap(),
            BlobsLocation::Dir("/srv/blobs".into())
        );
        assert_eq!(
            BlobsLocation::parse("file:///srv/my%20blobs").unwrap(),
            BlobsLocation::Dir("/srv/my blobs".into())
        );
        for (bad, says) in [
            ("file://relative/dir", "absolute path"),
            ("s3://Bucket", "not a bucket name"),
            ("http://h/b", "or s3://bucket"),
            ("/srv/blobs", "expected file:///"),
            ("file:///srv/../etc", "'..'"),
        ] {
            let e = BlobsLocation::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_reads_are_checked_and_cached() {
        let tmp = tempfile::tempdir().unwrap();
        let shared_dir = tmp.path().join("shared");
        let open = |node: &str| {
            let local = stratus_package::BlobStore::open(tmp.path().join(node)).unwrap();
            let loc = BlobsLocation::Dir(shared_dir.clone());
            Blobs::with_shared(
                local,
                &loc,
                "file:///shared",
                tokio::runtime::Handle::current(),
            )
            .unwrap()
        };
        let (a, b) = (open("a"), open("b"));
        let hash = tokio::task::block_in_place(|| a.put(b"package one")).unwrap();
        // Straight from an async worker (a handler asking whether a package exists).
        assert!(open("d").contains(&hash));
        tokio::task::block_in_place(|| {
            // Node b has no local copy: it reads the shared one, checked, and keeps it.
            assert!(b.contains(&hash));
            assert!(!tmp
                .path()
                .join("b/sha256")
                .join(&hash[..2])
                .join(&hash)
                .exists());
            assert_eq!(b.get(&hash).unwrap(), b"package one");
            assert!(b.local_path(&hash).unwrap().is_file());

            // A package altered in the shared store is refused by a node without a copy.
            let c = open("c");
            std::fs::write(
                shared_dir.join("sha256").join(&hash[..2]).join(&hash),
                b"package 0ne",
            )
            .unwrap();
            let e = c.get(&hash).unwrap_err();
            assert!(matches!(e, BlobsError::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains("corrupt"), "{e}");
            assert!(c.local_path(&hash).is_err());
            // Uploading it again repairs it.
            a.put(b"package one").unwrap();
            assert_eq!(c.get(&hash).unwrap(), b"package one");

            let missing = stratus_package::sha256_hex(b"never stored");
            assert!(!c.contains(&missing));
            assert!(matches!(c.get(&missing), Err(BlobsError::NotFound { .. })));
        });
    }
}
