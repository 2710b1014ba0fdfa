//! Data keys: random 256-bit keys stored in the `seal_keys` table of `state.db`,
//! each wrapped (AES-256-GCM) by the master key with its id as associated data.
//! The newest key seals new values; every key stays to open what it sealed.
//!
//! Opening a data dir ([`Sealer::open_data_dir`]) creates the master key and the
//! first data key on first start, and refuses a master key that does not unwrap
//! the stored keys. [`rotate`] re-wraps every data key under a new master key in
//! one transaction; the new key file is written beside the old one first and
//! renamed over it after the commit, and a start that finds that half-done state
//! (`master.key.new` present) finishes it with whichever key opens the table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rusqlite::{params, Connection};

use crate::error::SealError;
use crate::lock::DataDirLock;
use crate::master::{self, KeySource, MasterKey};
use crate::sealer::{Sealer, VERSION};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS seal_keys (
    id INTEGER PRIMARY KEY,
    wrapped BLOB NOT NULL,
    created_ms INTEGER NOT NULL
)";

/// The state database, where the wrapped data keys live.
pub const STATE_DB: &str = "state.db";

/// Unwrapped data keys: (id, key).
type DataKeys = Vec<(u32, [u8; 32])>;

fn wrap_aad(id: u32) -> Vec<u8> {
    format!("stratus-seal/data-key/{id}").into_bytes()
}

fn wrap(master: &MasterKey, id: u32, key: &[u8; 32]) -> Result<Vec<u8>, SealError> {
    wrap_for(master, &wrap_aad(id), key)
}

/// Wraps a data key under the master key, bound to `aad` (where the key lives).
pub(crate) fn wrap_for(
    master: &MasterKey,
    aad: &[u8],
    key: &[u8; 32],
) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master.0));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, Payload { msg: key, aad })
        .map_err(|_| SealError::Seal { len: key.len() })?;
    Ok([&[VERSION][..], &nonce, &ct].concat())
}

/// `Ok(None)`: the master key does not unwrap it. `Err`: stored in an unknown form.
fn unwrap(master: &MasterKey, id: u32, wrapped: &[u8]) -> Result<Option<[u8; 32]>, SealError> {
    unwrap_for(master, id, &wrap_aad(id), wrapped)
}

/// Unwraps what [`wrap_for`] wrapped for `aad`. `Ok(None)`: the master key does
/// not unwrap it. `Err`: stored in an unknown form.
pub(crate) fn unwrap_for(
    master: &MasterKey,
    id: u32,
    aad: &[u8],
    wrapped: &[u8],
) -> Result<Option<[u8; 32]>, SealError> {
    if wrapped.len() != 1 + 12 + 32 + 16 || wrapped[0] != VERSION {
        return Err(SealError::CorruptKey { key_id: id });
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master.0));
    let opened = cipher.decrypt(
        Nonce::from_slice(&wrapped[1..13]),
        Payload {
            msg: &wrapped[13..],
            aad,
        },
    );
    match opened {
        Ok(k) => Ok(Some(
            k.try_into()
                .map_err(|_| SealError::CorruptKey { key_id: id })?,
        )),
        Err(_) => Ok(None),
    }
}

pub(crate) fn random_key() -> Result<[u8; 32], SealError> {
    let mut k = [0u8; 32];
    master::random(&mut k)?;
    Ok(k)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Db {
    path: PathBuf,
    conn: Connection,
}

impl Db {
    fn open(dir: &Path) -> Result<Self, SealError> {
        let path = dir.join(STATE_DB);
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // Replaced wrappings are overwritten, not left in free pages.
            conn.pragma_update(None, "secure_delete", "ON")?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| SealError::Db {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path, conn })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> SealError + '_ {
        move |source| SealError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn rows(&self) -> Result<Vec<(u32, Vec<u8>)>, SealError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, wrapped FROM seal_keys ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Moves whatever the WAL holds into the database and empties the WAL file,
    /// so replaced wrappings live on in neither.
    fn checkpoint(&self) -> Result<(), SealError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.err())
    }
}

/// Unwraps every row with `key`; `Err(id)` names the first it does not open.
fn unwrap_all(
    key: &MasterKey,
    rows: &[(u32, Vec<u8>)],
) -> Result<Result<DataKeys, u32>, SealError> {
    let mut out = Vec::with_capacity(rows.len());
    for (id, wrapped) in rows {
        match unwrap(key, *id, wrapped)? {
            Some(k) => out.push((*id, k)),
            None => return Ok(Err(*id)),
        }
    }
    Ok(Ok(out))
}

/// Reads the master key and unwraps the data keys, finishing a rotation that
/// stopped between its commit and its rename.
fn load(db: &Db, source: &KeySource) -> Result<(MasterKey, DataKeys), SealError> {
    let rows = db.rows()?;
    let pending = match source {
        KeySource::File(path) => Some((path.clone(), master::pending_path(path))),
        KeySource::Env(_) => None,
    };
    let key = match source.read()? {
        Some(k) => Some(k),
        None if rows.is_empty() => None,
        None => match &pending {
            Some((path, new)) if new.exists() => Some(recover(path, new, &rows)?),
            Some((path, _)) => {
                return Err(SealError::MissingMasterKey { path: path.clone() });
            }
            None => None,
        },
    };
    let Some(key) = key else {
        // First start: a new master key (file) and, below, the first data key.
        let key = MasterKey::generate()?;
        if let KeySource::File(path) = source {
            master::write_key_file(path, &key)?;
        }
        return Ok((key, Vec::new()));
    };
    match unwrap_all(&key, &rows)? {
        Ok(keys) => {
            if let Some((_, new)) = &pending {
                // A rotation that stopped before its commit: the old key is still
                // the one; its unused successor goes.
                let _ = std::fs::remove_file(new);
            }
            Ok((key, keys))
        }
        Err(id) => match &pending {
            Some((path, new)) if new.exists() => {
                let key = recover(path, new, &rows)?;
                let keys =
                    unwrap_all(&key, &rows)?.map_err(|key_id| SealError::WrongMasterKey {
                        source_name: source.name(),
                        key_id,
                    })?;
                Ok((key, keys))
            }
            _ => Err(SealError::WrongMasterKey {
                source_name: source.name(),
                key_id: id,
            }),
        },
    }
}

/// A rotation committed but did not rename its new key file into place: when the
/// new key opens the table, install it.
fn recover(path: &Path, new: &Path, rows: &[(u32, Vec<u8>)]) -> Result<MasterKey, SealError> {
    let key = master::read_key_file(new)?.ok_or_else(|| SealError::MissingMasterKey {
        path: path.to_path_buf(),
    })?;
    match unwrap_all(&key, rows)? {
        Ok(_) => {
            std::fs::rename(new, path).map_err(|source| SealError::KeyFile {
                path: path.to_path_buf(),
                source,
            })?;
            master::sync_dir(path);
            Ok(key)
        }
        Err(key_id) => Err(SealError::WrongMasterKey {
            source_name: new.display().to_string(),
            key_id,
        }),
    }
}

/// Inserts a new random data key (the newest, so the current one).
fn add_data_key(
    conn: &Connection,
    master: &MasterKey,
    keys: &mut DataKeys,
) -> Result<u32, SealError> {
    let id = keys.iter().map(|(id, _)| *id).max().unwrap_or(0) + 1;
    let key = random_key()?;
    conn.execute(
        "INSERT INTO seal_keys (id, wrapped, created_ms) VALUES (?1, ?2, ?3)",
        params![id, wrap(master, id, &key)?, now_ms()],
    )
    .map_err(|source| SealError::Db {
        path: PathBuf::from(STATE_DB),
        source,
    })?;
    keys.push((id, key));
    Ok(id)
}

impl Sealer {
    /// Opens the data dir's keys: reads (on first start creates) the master key
    /// from `source`, unwraps every data key from `state.db` (creating the first),
    /// and refuses a master key that does not unwrap them.
    pub fn open_data_dir(dir: &Path, source: &KeySource) -> Result<Self, SealError> {
        let db = Db::open(dir)?;
        let (master, mut keys) = load(&db, source)?;
        if keys.is_empty() {
            add_data_key(&db.conn, &master, &mut keys)?;
        }
        let current = keys.iter().map(|(id, _)| *id).max().unwrap_or(1);
        Ok(Self::from_keys(current, keys))
    }
}

/// What [`rotate`] is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rotation {
    /// Replace the master key and re-wrap every data key under it.
    pub master: bool,
    /// Start a new data key that seals new values from now on.
    pub new_data_key: bool,
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotated {
    /// The new master key when it came from `STRATUS_MASTER_KEY` (it must be set
    /// to this for the next start); `None` when the key file was replaced.
    pub new_env_key: Option<MasterKey>,
    /// How many data keys were re-wrapped.
    pub rewrapped: usize,
    /// The data key that seals new values.
    pub current_key: u32,
}

/// Rotates the keys of a data dir no server is running on: a new master key
/// re-wraps every data key (the values themselves stay as they are: they are
/// sealed by the data keys, which do not change), and/or a new data key starts.
pub fn rotate(dir: &Path, source: &KeySource, what: Rotation) -> Result<Rotated, SealError> {
    let _lock = DataDirLock::acquire(dir)?;
    let mut db = Db::open(dir)?;
    let (old, mut keys) = load(&db, source)?;
    let fresh = keys.is_empty();
    let master = if what.master && !fresh {
        MasterKey::generate()?
    } else {
        old
    };
    let file = match source {
        KeySource::File(path) if what.master && !fresh => Some(path.clone()),
        _ => None,
    };
    if let Some(path) = &file {
        master::write_new(&master::pending_path(path), &master)?;
    }
    let path = db.path.clone();
    let dberr = |source| SealError::Db {
        path: path.clone(),
        source,
    };
    let tx = db.conn.transaction().map_err(dberr)?;
    let mut rewrapped = 0;
    if what.master {
        for (id, key) in &keys {
            tx.execute(
                "UPDATE seal_keys SET wrapped = ?2 WHERE id = ?1",
                params![id, wrap(&master, *id, key)?],
            )
            .map_err(dberr)?;
            rewrapped += 1;
        }
    }
    if what.new_data_key || fresh {
        add_data_key(&tx, &master, &mut keys)?;
    }
    tx.commit().map_err(dberr)?;
    db.checkpoint()?;
    if let Some(path) = &file {
        std::fs::rename(master::pending_path(path), path).map_err(|source| SealError::KeyFile {
            path: path.clone(),
            source,
        })?;
        master::sync_dir(path);
    }
    Ok(Rotated {
        new_env_key: match source {
            KeySource::Env(_) if what.master && !fresh => Some(master),
            _ => None,
        },
        rewrapped,
        current_key: keys.iter().map(|(id, _)| *id).max().unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OpenError;
    use crate::master::MASTER_KEY_FILE;

    fn file_source(dir: &Path) -> KeySource {
        KeySource::File(dir.join(MASTER_KEY_FILE))
    }

    #[test]
    fn first_start_creates_keys_and_later_starts_open_old_values() {
        let dir = tempfile::tempdir().unwrap();
        let src = file_source(dir.path());
        let s = Sealer::open_data_dir(dir.path(), &src).unwrap();
        assert!(dir.path().join(MASTER_KEY_FILE).exists());
        let sealed = s.seal(b"here", b"value").unwrap();
        let again = Sealer::open_data_dir(dir.path(), &src).unwrap();
        assert_eq!(again.open(b"here", &sealed).unwrap(), b"value");
        assert_eq!(again.current_key_id(), 1);
    }

    #[test]
    fn a_wrong_master_key_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        Sealer::open_data_dir(dir.path(), &file_source(dir.path())).unwrap();
        let other = KeySource::Env(MasterKey::generate().unwrap().to_base64());
        let err = Sealer::open_data_dir(dir.path(), &other).unwrap_err();
        assert!(
            matches!(err, SealError::WrongMasterKey { key_id: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("STRATUS_MASTER_KEY"), "{err}");
        // The key file gone while the table holds keys: no silent new key.
        std::fs::remove_file(dir.path().join(MASTER_KEY_FILE)).unwrap();
        let err = Sealer::open_data_dir(dir.path(), &file_source(dir.path())).unwrap_err();
        assert!(matches!(err, SealError::MissingMasterKey { .. }), "{err}");
    }

    #[test]
    fn rotation_rewraps_and_a_new_data_key_seals_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let src = file_source(dir.path());
        let s = Sealer::open_data_dir(dir.path(), &src).unwrap();
        let sealed = s.seal(b"p", b"old").unwrap();
        let old_key = std::fs::read_to_string(dir.path().join(MASTER_KEY_FILE)).unwrap();
        let r = rotate(
            dir.path(),
            &src,
            Rotation {
                master: true,
                new_data_key: true,
            },
        )
        .unwrap();
        assert_eq!((r.rewrapped, r.current_key), (1, 2));
        assert!(r.new_env_key.is_none());
        assert!(!master::pending_path(&dir.path().join(MASTER_KEY_FILE)).exists());
        let s2 = Sealer::open_data_dir(dir.path(), &src).unwrap();
        assert_eq!(s2.open(b"p", &sealed).unwrap(), b"old");
        let new = s2.seal(b"p", b"new").unwrap();
        assert_eq!(s.open(b"p", &new), Err(OpenError::UnknownKey(2)));
        // The old key no longer opens the data dir.
        let err = Sealer::open_data_dir(dir.path(), &KeySource::Env(old_key)).unwrap_err();
        assert!(matches!(err, SealError::WrongMasterKey { .. }), "{err}");
    }

    #[test]
    fn a_rotation_interrupted_after_its_commit_is_finished_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let src = file_source(dir.path());
        let path = dir.path().join(MASTER_KEY_FILE);
        let s = Sealer::open_data_dir(dir.path(), &src).unwrap();
        let sealed = s.seal(b"p", b"v").unwrap();
        let old = std::fs::read(&path).unwrap();
        rotate(
            dir.path(),
            &src,
            Rotation {
                master: true,
                new_data_key: false,
            },
        )
        .unwrap();
        // Put the state back to "committed, not renamed".
        std::fs::rename(&path, master::pending_path(&path)).unwrap();
        std::fs::write(&path, old).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s2 = Sealer::open_data_dir(dir.path(), &src).unwrap();
        assert_eq!(s2.open(b"p", &sealed).unwrap(), b"v");
        assert!(!master::pending_path(&path).exists());
    }

    #[test]
    fn rotation_refuses_while_a_server_holds_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let src = file_source(dir.path());
        Sealer::open_data_dir(dir.path(), &src).unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        let err = rotate(dir.path(), &src, Rotation::default()).unwrap_err();
        assert!(matches!(err, SealError::Locked { .. }), "{err}");
        drop(held);
        rotate(dir.path(), &src, Rotation::default()).unwrap();
    }

    #[test]
    fn rotating_an_environment_key_hands_back_the_new_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let old = KeySource::Env(MasterKey::generate().unwrap().to_base64());
        let s = Sealer::open_data_dir(dir.path(), &old).unwrap();
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        let sealed = s.seal(b"p", b"v").unwrap();
        let r = rotate(
            dir.path(),
            &old,
            Rotation {
                master: true,
                new_data_key: false,
            },
        )
        .unwrap();
        let new = KeySource::Env(r.new_env_key.expect("the new key").to_base64());
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        assert_eq!(
            Sealer::open_data_dir(dir.path(), &new)
                .unwrap()
                .open(b"p", &sealed)
                .unwrap(),
            b"v"
        );
        assert!(matches!(
            Sealer::open_data_dir(dir.path(), &old),
            Err(SealError::WrongMasterKey { .. })
        ));
    }
}
