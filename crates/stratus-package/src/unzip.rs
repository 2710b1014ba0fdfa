//! Safe extraction of untrusted zip archives into read-only trees.
//!
//! [`safe_unzip`] never writes outside its destination, never trusts sizes declared in zip
//! headers, and leaves either a complete tree at the destination or nothing at all.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zip::{CompressionMethod, System, ZipArchive};

use crate::hash::{is_sha256_hex, sha256_hex};

/// Unix file type bits of a mode.
const S_IFMT: u32 = 0o170_000;
/// Unix file type: regular file.
const S_IFREG: u32 = 0o100_000;
/// Unix file type: directory.
const S_IFDIR: u32 = 0o040_000;
/// Unix file type: symbolic link.
const S_IFLNK: u32 = 0o120_000;
/// MS-DOS attribute bit marking a directory.
const DOS_DIRECTORY: u32 = 0x10;
/// Longest symlink target accepted (Linux `PATH_MAX`).
const MAX_SYMLINK_TARGET: usize = 4096;
/// Copy buffer size used while decompressing.
const COPY_BUFFER: usize = 64 * 1024;

/// Size limits applied while extracting an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum total bytes written for file contents and symlink targets, counted while
    /// decompressing (default 250 MiB = 262,144,000 bytes, Lambda's unzipped-size limit).
    pub max_unzipped_bytes: u64,
    /// Maximum number of entries (files, directories and symlinks) in the archive
    /// (default 100,000).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_unzipped_bytes: 262_144_000,
            max_entries: 100_000,
        }
    }
}

/// What [`safe_unzip`] extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnzipSummary {
    /// Regular files and symlinks created (directories are not counted).
    pub files: u64,
    /// Bytes written: file contents plus symlink targets.
    pub bytes: u64,
}

/// Errors from [`safe_unzip`] and [`unpack_once`].
///
/// Variants caused by the archive's content (see [`UnzipError::is_user_error`]) name the
/// offending entry and are meant to be shown to the user who uploaded it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnzipError {
    /// The bytes are not a readable zip archive (garbage, truncated, corrupt directory).
    #[error("could not read zip archive: the data is not a valid zip file ({source})")]
    InvalidArchive {
        /// What the zip reader reported.
        source: zip::result::ZipError,
    },
    /// The archive has more entries than [`Limits::max_entries`].
    #[error("zip archive has {count} entries, more than the limit of {limit}")]
    TooManyEntries {
        /// Entries in the archive.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The sizes declared in the archive's headers already add up to more than the limit.
    #[error(
        "zip archive declares {declared} bytes of uncompressed content, \
         more than the limit of {limit} bytes"
    )]
    DeclaredTooLarge {
        /// Sum of the declared uncompressed sizes.
        declared: u128,
        /// The limit.
        limit: u64,
    },
    /// More than [`Limits::max_unzipped_bytes`] were actually decompressed.
    #[error(
        "zip archive content is larger than the limit of {limit} bytes when uncompressed \
         (limit reached while extracting entry '{entry}')"
    )]
    TooLarge {
        /// Entry being extracted when the limit was reached.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// Two or more central directory records have the same name.
    #[error("zip archive contains more than one entry with the same name")]
    DuplicateNames,
    /// The central directory record of an entry could not be read.
    #[error("zip entry #{index} could not be read: {source}")]
    EntryHeader {
        /// Zero-based index of the entry.
        index: usize,
        /// What the zip reader reported.
        source: zip::result::ZipError,
    },
    /// An entry's name is absolute, contains `..`, a NUL byte, or is otherwise unusable.
    #[error("zip entry '{entry}' has an unsafe name: {reason}")]
    UnsafeName {
        /// The entry name as stored in the archive.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry is encrypted.
    #[error("zip entry '{entry}' is encrypted; encrypted zip files are not supported")]
    Encrypted {
        /// The entry name.
        entry: String,
    },
    /// An entry uses a compression method other than stored or deflate.
    #[error(
        "zip entry '{entry}' uses unsupported compression method {method}; \
         only stored and deflate are supported"
    )]
    UnsupportedCompression {
        /// The entry name.
        entry: String,
        /// The method, as named by the zip reader.
        method: String,
    },
    /// An entry is a FIFO, device, socket or other special file.
    #[error(
        "zip entry '{entry}' has unsupported file type (unix mode {mode:o}); \
         only regular files, directories and symlinks are allowed"
    )]
    UnsupportedFileType {
        /// The entry name.
        entry: String,
        /// Its unix mode.
        mode: u32,
    },
    /// A symlink entry's target is absolute or points outside the archive root.
    #[error("zip entry '{entry}' is a symlink with unsafe target '{target}': {reason}")]
    UnsafeSymlink {
        /// The entry name.
        entry: String,
        /// The link target stored in the entry.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry's path runs through a symlink created by an earlier entry.
    #[error(
        "zip entry '{entry}' would be written through symlink '{symlink}' created by an \
         earlier entry"
    )]
    ThroughSymlink {
        /// The entry name.
        entry: String,
        /// The path (inside the archive) that is a symlink.
        symlink: String,
    },
    /// An entry's path is already taken by an earlier entry (duplicate name, or a file
    /// where a directory is needed or vice versa).
    #[error("zip entry '{entry}' conflicts with earlier entry '{existing}'")]
    Conflict {
        /// The entry name.
        entry: String,
        /// The path (inside the archive) that already exists.
        existing: String,
    },
    /// An entry's data could not be decompressed (corrupt data, CRC mismatch, or more
    /// data than its header declares).
    #[error("zip entry '{entry}' could not be decompressed: {source}")]
    Decompress {
        /// The entry name.
        entry: String,
        /// What the zip reader reported.
        source: io::Error,
    },
    /// The destination already exists.
    #[error("extraction destination {path} already exists")]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// The destination has no final component (such as `/` or `..`).
    #[error("extraction destination {path} must name a new directory")]
    InvalidDestination {
        /// The destination.
        path: PathBuf,
    },
    /// A directory could not be created.
    #[error("could not create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// An extracted file or symlink could not be written.
    #[error("could not write zip entry '{entry}' to {path}: {source}")]
    Write {
        /// The entry name.
        entry: String,
        /// Where it was being written.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// Final permissions could not be applied.
    #[error("could not set permissions on {path}: {source}")]
    SetPermissions {
        /// The file or directory.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The extracted tree could not be moved to the destination.
    #[error("could not move extracted tree from {from} to {to}: {source}")]
    Rename {
        /// The temporary directory.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A hash given to [`unpack_once`] is not 64 lowercase hex characters.
    #[error("invalid content hash '{hash}': expected 64 lowercase hex characters")]
    InvalidHash {
        /// The rejected hash.
        hash: String,
    },
    /// The bytes given to [`unpack_once`] do not have the given hash.
    #[error("zip content hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The hash the caller passed.
        expected: String,
        /// The hash of the bytes.
        actual: String,
    },
}

impl UnzipError {
    /// True if the error is caused by the archive's content (the uploader's fault, to be
    /// reported as an invalid parameter); false for local I/O failures and caller bugs.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidArchive { .. }
                | Self::TooManyEntries { .. }
                | Self::DuplicateNames
                | Self::DeclaredTooLarge { .. }
                | Self::TooLarge { .. }
                | Self::EntryHeader { .. }
                | Self::UnsafeName { .. }
                | Self::Encrypted { .. }
                | Self::UnsupportedCompression { .. }
                | Self::UnsupportedFileType { .. }
                | Self::UnsafeSymlink { .. }
                | Self::ThroughSymlink { .. }
                | Self::Conflict { .. }
                | Self::Decompress { .. }
        )
    }
}

/// Extracts `zip_bytes` into the new directory `dest`, safely.
///
/// `dest` must not exist; its parent is created if missing. The archive is extracted into a
/// temporary sibling directory that is renamed to `dest` only once complete, so a failed,
/// crashed or concurrent extraction never leaves a partial tree at `dest`. If `dest`
/// appears while extracting (a concurrent extraction won), the existing tree is kept and
/// this call succeeds.
///
/// Rules:
/// * entry names must be relative and free of `..` components and NUL bytes; `\` is
///   treated as a path separator (some Windows tools write it), so `..\x` is rejected too;
/// * symlink entries are created as symlinks only if their target is relative and stays
///   inside the tree; `..` is allowed only at the start of a target (`../lib/x`), which
///   keeps lexical resolution equal to what the kernel does; no entry may be written
///   through a symlink;
/// * at most [`Limits::max_entries`] entries, and at most [`Limits::max_unzipped_bytes`]
///   bytes, counted while decompressing (header sizes are only used to reject early);
/// * only stored and deflate compression; no encryption; no special files;
/// * files get mode `0o555` if any execute bit is set in the entry's unix mode, else
///   `0o444`; entries without a unix mode (Windows tools) get `0o444`, except a top-level
///   `bootstrap`, which gets `0o555`; directories end up `0o555`.
///
/// Use [`remove_tree`] to delete the read-only result. A process killed mid-extraction
/// leaves a hidden `.<name>.unzip-<pid>-<n>` sibling of `dest` (never `dest` itself),
/// which can be deleted the same way.
pub fn safe_unzip(
    zip_bytes: &[u8],
    dest: &Path,
    limits: &Limits,
) -> Result<UnzipSummary, UnzipError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(UnzipError::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    let Some(dest_name) = dest.file_name() else {
        return Err(UnzipError::InvalidDestination {
            path: dest.to_path_buf(),
        });
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let mut archive = ZipArchive::new(Cursor::new(zip_bytes))
        .map_err(|source| UnzipError::InvalidArchive { source })?;
    if archive.has_duplicate_names() {
        return Err(UnzipError::DuplicateNames);
    }
    if archive.len() > limits.max_entries {
        return Err(UnzipError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    // Declared sizes are only used to reject early, so an honest oversized archive fails
    // without writing anything. Understated sizes are caught while decompressing: the zip
    // reader stops an entry that produces more than its declared size, and independently
    // `copy_capped` counts every byte actually produced against the limit.
    let mut declared: u128 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|source| UnzipError::EntryHeader { index, source })?;
        declared += u128::from(entry.size());
    }
    if declared > u128::from(limits.max_unzipped_bytes) {
        return Err(UnzipError::DeclaredTooLarge {
            declared,
            limit: limits.max_unzipped_bytes,
        });
    }

    fs::create_dir_all(&parent).map_err(|source| UnzipError::CreateDir {
        path: parent.clone(),
        source,
    })?;
    let tmp = create_temp_dir(&parent, &dest_name.to_string_lossy())?;
    let summary = match Extractor::new(&tmp, limits).run(&mut archive) {
        Ok(summary) => summary,
        Err(e) => {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
    };
    if let Err(source) = fs::rename(&tmp, dest) {
        let _ = remove_tree(&tmp);
        if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
            // Another extraction finished first; its tree is as good as ours.
            return Ok(summary);
        }
        return Err(UnzipError::Rename {
            from: tmp,
            to: dest.to_path_buf(),
            source,
        });
    }
    Ok(summary)
}

/// Extracts `zip_bytes` to `store_dir/<sha_hex>` unless that directory already exists,
/// and returns its path. Idempotent and safe to call concurrently.
///
/// `sha_hex` must be the SHA-256 of `zip_bytes` as 64 lowercase hex characters; this is
/// checked before extracting, so a tree is never stored under the wrong hash.
pub fn unpack_once(
    store_dir: &Path,
    sha_hex: &str,
    zip_bytes: &[u8],
    limits: &Limits,
) -> Result<PathBuf, UnzipError> {
    if !is_sha256_hex(sha_hex) {
        return Err(UnzipError::InvalidHash {
            hash: sha_hex.to_owned(),
        });
    }
    let dest = store_dir.join(sha_hex);
    if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
        return Ok(dest);
    }
    let actual = sha256_hex(zip_bytes);
    if actual != sha_hex {
        return Err(UnzipError::HashMismatch {
            expected: sha_hex.to_owned(),
            actual,
        });
    }
    match safe_unzip(zip_bytes, &dest, limits) {
        Ok(_) => Ok(dest),
        // Lost a race with a concurrent unpack of the same content.
        Err(UnzipError::DestinationExists { .. })
            if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) =>
        {
            Ok(dest)
        }
        Err(e) => Err(e),
    }
}

/// Removes `path` and everything below it, first making directories writable (trees from
/// [`safe_unzip`] are read-only). Symlinks are removed, never followed. A missing `path`
/// is not an error.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    fs::remove_dir_all(path)
}

/// Distinguishes temporary directories created by concurrent extractions in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a new, uniquely named, hidden directory in `parent`.
fn create_temp_dir(parent: &Path, base: &str) -> Result<PathBuf, UnzipError> {
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!(".{base}.unzip-{}-{n}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            // Left over by a crashed process that had the same pid; pick another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(UnzipError::CreateDir { path, source }),
        }
    }
}

/// What an entry is, decided from its name and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Directory,
    File,
    Symlink,
}

/// Owned facts about one entry, read from the central directory.
#[derive(Debug)]
struct EntryInfo {
    name: String,
    kind: EntryKind,
    /// Unix mode, if the entry was made on unix and has one.
    unix_mode: Option<u32>,
}

/// Reads the central-directory facts of entry `index` and rejects unsupported entries.
fn entry_info(archive: &ZipArchive<Cursor<&[u8]>>, index: usize) -> Result<EntryInfo, UnzipError> {
    let entry = archive
        .by_index_data(index)
        .map_err(|source| UnzipError::EntryHeader { index, source })?;
    let raw = entry.name_raw();
    let name = match std::str::from_utf8(raw) {
        Ok(s) => s.to_owned(),
        // Not UTF-8: use the zip reader's decoding (CP437 unless the UTF-8 flag is set).
        Err(_) => entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
    };
    let attrs = entry.external_attributes();
    let unix_mode = match (entry.system(), attrs >> 16) {
        (System::Unix, mode) if mode != 0 => Some(mode),
        _ => None,
    };
    let file_type = unix_mode.map(|m| m & S_IFMT);
    let kind = if name.ends_with('/')
        || name.ends_with('\\')
        || file_type == Some(S_IFDIR)
        || (unix_mode.is_none() && attrs & DOS_DIRECTORY != 0)
    {
        EntryKind::Directory
    } else if file_type == Some(S_IFLNK) {
        EntryKind::Symlink
    } else if matches!(file_type, None | Some(0) | Some(S_IFREG)) {
        EntryKind::File
    } else {
        return Err(UnzipError::UnsupportedFileType {
            entry: name,
            mode: unix_mode.unwrap_or(0),
        });
    };
    if entry.encrypted() {
        return Err(UnzipError::Encrypted { entry: name });
    }
    let method = entry.compression();
    if kind != EntryKind::Directory
        && method != CompressionMethod::Stored
        && method != CompressionMethod::Deflated
    {
        return Err(UnzipError::UnsupportedCompression {
            entry: name,
            method: method.to_string(),
        });
    }
    Ok(EntryInfo {
        name,
        kind,
        unix_mode,
    })
}

/// Splits an entry name into safe path components, or says why it is unsafe.
///
/// `\` counts as a separator, empty and `.` components are dropped.
fn sanitize_name(name: &str) -> Result<Vec<&str>, &'static str> {
    if name.contains('\0') {
        return Err("name contains a NUL byte");
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("name is an absolute path");
    }
    let mut components = Vec::new();
    for (i, component) in name.split(['/', '\\']).enumerate() {
        match component {
            "" | "." => {}
            ".." => return Err("name contains a '..' component"),
            c if i == 0 && c.len() == 2 && c.ends_with(':') => {
                return Err("name starts with a Windows drive letter");
            }
            c => components.push(c),
        }
    }
    Ok(components)
}

/// Checks that a symlink at `link` (path components inside the root) pointing at `target`
/// resolves inside the root.
///
/// `..` is only accepted before the first normal component: the link's directory and its
/// ancestors are real directories (no entry is written through a symlink), so walking up
/// from there is exactly what the kernel will do, and everything after is walked downward,
/// where each symlink met was checked the same way.
fn check_symlink_target(link: &[&str], target: &str) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("target is empty");
    }
    if target.contains('\0') {
        return Err("target contains a NUL byte");
    }
    if target.starts_with('/') {
        return Err("target is an absolute path");
    }
    let mut depth = link.len().saturating_sub(1);
    let mut descended = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if descended => {
                return Err("'..' is only allowed at the start of a symlink target");
            }
            ".." => {
                if depth == 0 {
                    return Err("target points outside the archive");
                }
                depth -= 1;
            }
            _ => {
                descended = true;
                depth += 1;
            }
        }
    }
    Ok(())
}

/// Why [`copy_capped`] stopped.
#[derive(Debug)]
enum CopyError {
    /// Reading (decompressing) failed.
    Read(io::Error),
    /// Writing failed.
    Write(io::Error),
    /// More than the budget was produced.
    LimitExceeded,
}

/// Copies `reader` to `writer`, failing as soon as more than `budget` bytes have been
/// produced. Returns the number of bytes copied.
fn copy_capped(
    reader: &mut impl Read,
    writer: &mut impl Write,
    budget: u64,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut copied: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        copied += n as u64;
        if copied > budget {
            return Err(CopyError::LimitExceeded);
        }
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// State of one extraction into a fresh directory.
#[derive(Debug)]
struct Extractor<'a> {
    root: &'a Path,
    limits: &'a Limits,
    /// Directories (relative paths) known to exist as real directories.
    dirs: HashSet<String>,
    summary: UnzipSummary,
}

impl<'a> Extractor<'a> {
    fn new(root: &'a Path, limits: &'a Limits) -> Self {
        Self {
            root,
            limits,
            dirs: HashSet::new(),
            summary: UnzipSummary::default(),
        }
    }

    fn run(mut self, archive: &mut ZipArchive<Cursor<&[u8]>>) -> Result<UnzipSummary, UnzipError> {
        for index in 0..archive.len() {
            let info = entry_info(archive, index)?;
            let components =
                sanitize_name(&info.name).map_err(|reason| UnzipError::UnsafeName {
                    entry: info.name.clone(),
                    reason,
                })?;
            match info.kind {
                EntryKind::Directory => self.ensure_dirs(&components, &info.name)?,
                EntryKind::File | EntryKind::Symlink if components.is_empty() => {
                    return Err(UnzipError::UnsafeName {
                        entry: info.name,
                        reason: "name is empty",
                    });
                }
                EntryKind::File => {
                    self.ensure_dirs(&components[..components.len() - 1], &info.name)?;
                    let mut reader = archive
                        .by_index(index)
                        .map_err(|source| decompress_error(&info.name, source))?;
                    self.write_file(&info, &components, &mut reader)?;
                }
                EntryKind::Symlink => {
                    self.ensure_dirs(&components[..components.len() - 1], &info.name)?;
                    let mut reader = archive
                        .by_index(index)
                        .map_err(|source| decompress_error(&info.name, source))?;
                    self.write_symlink(&info, &components, &mut reader)?;
                }
            }
        }
        self.seal()?;
        Ok(self.summary)
    }

    /// Makes sure every prefix of `components` is a real directory, creating as needed.
    fn ensure_dirs(&mut self, components: &[&str], entry: &str) -> Result<(), UnzipError> {
        for end in 1..=components.len() {
            let rel = components[..end].join("/");
            if self.dirs.contains(&rel) {
                continue;
            }
            let path = self.root.join(&rel);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(UnzipError::ThroughSymlink {
                        entry: entry.to_owned(),
                        symlink: rel,
                    });
                }
                Ok(_) => {
                    return Err(UnzipError::Conflict {
                        entry: entry.to_owned(),
                        existing: rel,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).map_err(|source| UnzipError::CreateDir {
                        path: path.clone(),
                        source,
                    })?;
                }
                Err(source) => return Err(UnzipError::CreateDir { path, source }),
            }
            self.dirs.insert(rel);
        }
        Ok(())
    }

    fn remaining_budget(&self) -> u64 {
        self.limits
            .max_unzipped_bytes
            .saturating_sub(self.summary.bytes)
    }

    fn write_file(
        &mut self,
        info: &EntryInfo,
        components: &[&str],
        reader: &mut impl Read,
    ) -> Result<(), UnzipError> {
        let rel = components.join("/");
        let path = self.root.join(&rel);
        let write_error = |source| UnzipError::Write {
            entry: info.name.clone(),
            path: path.clone(),
            source,
        };
        // create_new: never follows or replaces anything already there.
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(UnzipError::Conflict {
                    entry: info.name.clone(),
                    existing: rel,
                });
            }
            Err(e) => return Err(write_error(e)),
        };
        let written = match copy_capped(reader, &mut file, self.remaining_budget()) {
            Ok(n) => n,
            Err(CopyError::LimitExceeded) => {
                return Err(UnzipError::TooLarge {
                    entry: info.name.clone(),
                    limit: self.limits.max_unzipped_bytes,
                });
            }
            Err(CopyError::Read(source)) => {
                return Err(UnzipError::Decompress {
                    entry: info.name.clone(),
                    source,
                });
            }
            Err(CopyError::Write(source)) => return Err(write_error(source)),
        };
        self.summary.bytes += written;
        self.summary.files += 1;

        let executable = match info.unix_mode {
            Some(mode) => mode & 0o111 != 0,
            None => components == ["bootstrap"],
        };
        let mode = if executable { 0o555 } else { 0o444 };
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|source| UnzipError::SetPermissions {
                path: path.clone(),
                source,
            })?;
        Ok(())
    }

    fn write_symlink(
        &mut self,
        info: &EntryInfo,
        components: &[&str],
        reader: &mut impl Read,
    ) -> Result<(), UnzipError> {
        let mut target = Vec::new();
        reader
            .take(MAX_SYMLINK_TARGET as u64 + 1)
            .read_to_end(&mut target)
            .map_err(|source| UnzipError::Decompress {
                entry: info.name.clone(),
                source,
            })?;
        let target_str = String::from_utf8_lossy(&target).into_owned();
        if target.len() > MAX_SYMLINK_TARGET {
            return Err(UnzipError::UnsafeSymlink {
                entry: info.name.clone(),
                target: format!("{}...", target_str.chars().take(64).collect::<String>()),
                reason: "target is longer than 4096 bytes",
            });
        }
        if std::str::from_utf8(&target).is_err() {
            return Err(UnzipError::UnsafeSymlink {
                entry: info.name.clone(),
                target: target_str,
                reason: "target is not valid UTF-8",
            });
        }
        check_symlink_target(components, &target_str).map_err(|reason| {
            UnzipError::UnsafeSymlink {
                entry: info.name.clone(),
                target: target_str.clone(),
                reason,
            }
        })?;
        if target.len() as u64 > self.remaining_budget() {
            return Err(UnzipError::TooLarge {
                entry: info.name.clone(),
                limit: self.limits.max_unzipped_bytes,
            });
        }
        let rel = components.join("/");
        let path = self.root.join(&rel);
        match std::os::unix::fs::symlink(&target_str, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(UnzipError::Conflict {
                    entry: info.name.clone(),
                    existing: rel,
                });
            }
            Err(source) => {
                return Err(UnzipError::Write {
                    entry: info.name.clone(),
                    path,
                    source,
                });
            }
        }
        self.summary.bytes += target.len() as u64;
        self.summary.files += 1;
        Ok(())
    }

    /// Makes every directory read-only (`0o555`), deepest first, then the root.
    fn seal(&self) -> Result<(), UnzipError> {
        let mut dirs: Vec<&String> = self.dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        let read_only = |path: PathBuf| {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o555))
                .map_err(|source| UnzipError::SetPermissions { path, source })
        };
        for dir in dirs {
            read_only(self.root.join(dir))?;
        }
        read_only(self.root.to_path_buf())
    }
}

/// Wraps an error from opening an entry's data stream.
fn decompress_error(entry: &str, source: zip::result::ZipError) -> UnzipError {
    let source = match source {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    };
    UnzipError::Decompress {
        entry: entry.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zipwrite::zip_dir;
    use zip::write::SimpleFileOptions;
    use zip::ZipWriter;

    /// A temporary directory that is deleted even when it holds read-only trees (plain
    /// `TempDir` cleanup fails on them when not running as root).
    struct Scratch(tempfile::TempDir);

    impl Scratch {
        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = remove_tree(self.0.path());
        }
    }

    fn scratch() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    /// One entry of a hand-built test archive.
    enum Item<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Link(&'a str, &'a str),
        /// A file as written by a Windows tool: no unix mode, only DOS attributes.
        DosFile(&'a str, &'a [u8]),
    }

    fn build(items: &[Item<'_>]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let base = SimpleFileOptions::default().system(System::Unix);
        for item in items {
            match *item {
                Item::File(name, data, mode) => {
                    w.start_file(name, base.unix_permissions(mode)).unwrap();
                    w.write_all(data).unwrap();
                }
                Item::Dir(name) => w.add_directory(name, base).unwrap(),
                Item::Link(name, target) => w.add_symlink(name, target, base).unwrap(),
                Item::DosFile(name, data) => {
                    let dos = SimpleFileOptions::default()
                        .system(System::Dos)
                        .external_attributes(0x20);
                    w.start_file(name, dos).unwrap();
                    w.write_all(data).unwrap();
                }
            }
        }
        w.finish().unwrap().into_inner()
    }

    /// Calls `f(local_header_offset, central_header_offset)` for every entry.
    fn for_each_header(zip: &mut [u8], mut f: impl FnMut(&mut [u8], usize, usize)) {
        let eocd = zip.len() - 22;
        assert_eq!(
            &zip[eocd..eocd + 4],
            b"PK\x05\x06",
            "test zips have no comment"
        );
        let u16_at = |z: &[u8], o: usize| usize::from(u16::from_le_bytes([z[o], z[o + 1]]));
        let u32_at =
            |z: &[u8], o: usize| u32::from_le_bytes([z[o], z[o + 1], z[o + 2], z[o + 3]]) as usize;
        let count = u16_at(zip, eocd + 10);
        let mut central = u32_at(zip, eocd + 16);
        for _ in 0..count {
            assert_eq!(&zip[central..central + 4], b"PK\x01\x02");
            let local = u32_at(zip, central + 42);
            assert_eq!(&zip[local..local + 4], b"PK\x03\x04");
            f(zip, local, central);
            central += 46
                + u16_at(zip, central + 28)
                + u16_at(zip, central + 30)
                + u16_at(zip, central + 32);
        }
    }

    /// Rewrites the declared uncompressed size of every entry (local and central headers).
    fn lie_about_sizes(zip: &mut [u8], size: u32) {
        for_each_header(zip, |z, local, central| {
            z[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
            z[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
        });
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Asserts that `dest` was not created and no temporary directory was left beside it.
    fn assert_nothing_left(parent: &Path) {
        let left: Vec<_> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// Extracts `zip` into a fresh temp dir expecting failure; checks cleanup.
    fn unzip_err(zip: &[u8], limits: &Limits) -> UnzipError {
        let parent = scratch();
        let err = safe_unzip(zip, &parent.path().join("out"), limits).unwrap_err();
        assert_nothing_left(parent.path());
        err
    }

    #[test]
    fn round_trip_zip_dir_preserves_content_and_exec_bit() {
        let src = scratch();
        let write = |rel: &str, data: &[u8], mode: u32| {
            let p = src.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, data).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        };
        write("bootstrap", b"#!/bin/sh\n", 0o755);
        write("bin/tool", b"\x7fELF", 0o700);
        write("lib/data.json", b"{}", 0o644);
        write("lib/deep/x.bin", &[42u8; 100_000], 0o600);
        let zip = zip_dir(src.path()).unwrap();

        let out = scratch();
        let dest = out.path().join("code");
        let summary = safe_unzip(&zip, &dest, &Limits::default()).unwrap();
        assert_eq!(
            summary,
            UnzipSummary {
                files: 4,
                bytes: 10 + 4 + 2 + 100_000
            }
        );
        assert_eq!(fs::read(dest.join("bootstrap")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            fs::read(dest.join("lib/deep/x.bin")).unwrap(),
            [42u8; 100_000]
        );
        assert_eq!(mode(&dest.join("bootstrap")), 0o555);
        assert_eq!(mode(&dest.join("bin/tool")), 0o555);
        assert_eq!(mode(&dest.join("lib/data.json")), 0o444);
        assert_eq!(mode(&dest.join("lib/deep/x.bin")), 0o444);
        for dir in ["", "bin", "lib", "lib/deep"] {
            assert_eq!(mode(&dest.join(dir)), 0o555, "{dir}");
        }
        // Only `code` itself is left in the parent: the temp dir was renamed.
        let names: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("code")]);
        remove_tree(&dest).unwrap();
    }

    #[test]
    fn explicit_directory_entries_and_dot_components() {
        let zip = build(&[
            Item::Dir("empty/"),
            Item::Dir("./"),
            Item::File("./a/./b.txt", b"b", 0o644),
            Item::Dir("a/"),
        ]);
        let out = scratch();
        let dest = out.path().join("x");
        safe_unzip(&zip, &dest, &Limits::default()).unwrap();
        assert!(dest.join("empty").is_dir());
        assert_eq!(mode(&dest.join("empty")), 0o555);
        assert_eq!(fs::read(dest.join("a/b.txt")).unwrap(), b"b");
    }

    #[test]
    fn windows_zip_without_unix_mode() {
        let zip = build(&[
            Item::DosFile("bootstrap", b"#!/bin/sh"),
            Item::DosFile("handler.py", b"x = 1"),
            Item::DosFile("sub\\bootstrap", b"not top level"),
        ]);
        let out = scratch();
        let dest = out.path().join("x");
        safe_unzip(&zip, &dest, &Limits::default()).unwrap();
        assert_eq!(mode(&dest.join("bootstrap")), 0o555);
        assert_eq!(mode(&dest.join("handler.py")), 0o444);
        // Backslashes are separators.
        assert_eq!(mode(&dest.join("sub/bootstrap")), 0o444);
    }

    #[test]
    fn unix_bootstrap_without_exec_bit_stays_non_executable() {
        let zip = build(&[Item::File("bootstrap", b"#!/bin/sh", 0o644)]);
        let out = scratch();
        safe_unzip(&zip, &out.path().join("x"), &Limits::default()).unwrap();
        assert_eq!(mode(&out.path().join("x/bootstrap")), 0o444);
    }

    #[test]
    fn dotdot_entries_rejected() {
        for name in [
            "../evil",
            "a/../../evil",
            "a/..",
            "..\\evil",
            "a\\..\\..\\evil",
        ] {
            let zip = build(&[
                Item::File("ok.txt", b"ok", 0o644),
                Item::File(name, b"x", 0o644),
            ]);
            let err = unzip_err(&zip, &Limits::default());
            assert!(
                matches!(err, UnzipError::UnsafeName { .. }),
                "{name}: {err}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("'{name}'")), "{msg}");
            assert!(msg.contains("'..'"), "{msg}");
            assert!(err.is_user_error());
        }
    }

    #[test]
    fn absolute_and_nul_entries_rejected() {
        for (name, what) in [
            ("/etc/evil", "absolute"),
            ("\\evil", "absolute"),
            ("C:/evil", "drive letter"),
            ("c:\\evil", "drive letter"),
            ("a\0b", "NUL"),
        ] {
            let zip = build(&[Item::File(name, b"x", 0o644)]);
            let err = unzip_err(&zip, &Limits::default());
            assert!(
                matches!(err, UnzipError::UnsafeName { .. }),
                "{name:?}: {err}"
            );
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn escaping_symlinks_rejected() {
        for (link, target, why) in [
            ("link", "/etc/passwd", "absolute"),
            ("link", "..", "outside"),
            ("link", "../outside", "outside"),
            ("sub/link", "../../x", "outside"),
            ("sub/link", "./../.././x", "outside"),
            // Would escape if `self` were a symlink to `.`: only leading `..` are allowed.
            ("link", "self/..", "only allowed at the start"),
            ("link", "", "empty"),
        ] {
            let zip = build(&[Item::Link("self", "."), Item::Link(link, target)]);
            let err = unzip_err(&zip, &Limits::default());
            assert!(
                matches!(err, UnzipError::UnsafeSymlink { .. }),
                "{target}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("'{link}'")) && msg.contains(why),
                "{msg}"
            );
        }
    }

    #[test]
    fn in_root_symlinks_allowed() {
        let zip = build(&[
            Item::File("lib/real.so.1", b"lib", 0o755),
            Item::Link("lib/real.so", "real.so.1"),
            Item::Link("bin/tool", "../lib/./real.so.1"),
            Item::Link("libdir", "lib"),
            Item::Link("deep/er/root", "../.."),
        ]);
        let out = scratch();
        let dest = out.path().join("x");
        let summary = safe_unzip(&zip, &dest, &Limits::default()).unwrap();
        assert_eq!(summary.files, 5);
        assert_eq!(
            fs::read_link(dest.join("bin/tool")).unwrap(),
            Path::new("../lib/./real.so.1")
        );
        assert_eq!(fs::read(dest.join("bin/tool")).unwrap(), b"lib");
        assert_eq!(fs::read(dest.join("libdir/real.so")).unwrap(), b"lib");
        assert!(dest.join("deep/er/root/lib").is_dir());
        remove_tree(&dest).unwrap();
        assert!(!dest.exists());
        // The symlink targets were not touched by remove_tree.
        assert!(out.path().exists());
    }

    #[test]
    fn writing_through_symlink_rejected() {
        let zip = build(&[
            Item::Dir("sub/"),
            Item::Link("d", "sub"),
            Item::File("d/evil", b"x", 0o644),
        ]);
        let err = unzip_err(&zip, &Limits::default());
        assert!(matches!(err, UnzipError::ThroughSymlink { .. }), "{err}");
        assert!(err.to_string().contains("'d/evil'"), "{err}");
    }

    #[test]
    fn duplicates_and_conflicts_rejected() {
        let cases: [&[Item<'_>]; 4] = [
            &[Item::File("a", b"1", 0o644), Item::File("./a", b"2", 0o644)],
            &[Item::File("a", b"1", 0o644), Item::File("a/b", b"2", 0o644)],
            &[Item::Dir("a/"), Item::File("a", b"2", 0o644)],
            &[Item::File("a", b"1", 0o644), Item::Link("./a", "b")],
        ];
        for items in cases {
            let err = unzip_err(&build(items), &Limits::default());
            assert!(matches!(err, UnzipError::Conflict { .. }), "{err}");
            assert!(err.to_string().contains("earlier entry 'a'"), "{err}");
        }
        // The zip writer refuses exact duplicates, so rename "b" to "a" in the headers.
        let mut zip = build(&[Item::File("a", b"1", 0o644), Item::File("b", b"2", 0o644)]);
        for_each_header(&mut zip, |z, local, central| {
            if z[local + 30] == b'b' {
                z[local + 30] = b'a';
                z[central + 46] = b'a';
            }
        });
        let err = unzip_err(&zip, &Limits::default());
        assert!(matches!(err, UnzipError::DuplicateNames), "{err}");
    }

    #[test]
    fn special_file_types_rejected() {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let fifo = SimpleFileOptions::default()
            .system(System::Unix)
            .external_attributes((0o010_644) << 16);
        w.start_file("pipe", fifo).unwrap();
        let zip = w.finish().unwrap().into_inner();
        let err = unzip_err(&zip, &Limits::default());
        assert!(
            matches!(err, UnzipError::UnsupportedFileType { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("'pipe'"), "{err}");
    }

    /// A 16 MiB file of zeros, deflated to a few KiB.
    fn bomb() -> Vec<u8> {
        let zeros = vec![0u8; 16 << 20];
        build(&[Item::File("bomb.bin", &zeros, 0o644)])
    }

    #[test]
    fn zip_bomb_with_lying_headers_is_stopped() {
        let mut zip = bomb();
        assert!(zip.len() < 100_000, "{}", zip.len());
        let limits = Limits {
            max_unzipped_bytes: 1 << 20,
            max_entries: 10,
        };
        // Honest headers: rejected up front from the declared size.
        let err = unzip_err(&zip, &limits);
        assert!(matches!(err, UnzipError::DeclaredTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("1048576"), "{err}");

        // Headers claim 1000 bytes: the declared-size check passes, extraction is stopped
        // while decompressing, naming the entry.
        lie_about_sizes(&mut zip, 1000);
        let err = unzip_err(&zip, &limits);
        assert!(
            matches!(
                err,
                UnzipError::TooLarge { .. } | UnzipError::Decompress { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("'bomb.bin'"), "{err}");
        assert!(err.is_user_error());
    }

    #[test]
    fn byte_cap_counts_bytes_actually_produced() {
        // The cap does not depend on any header: an endless stream is cut at the budget.
        let mut sink = Vec::new();
        let err = copy_capped(&mut io::repeat(0), &mut sink, 100_000).unwrap_err();
        assert!(matches!(err, CopyError::LimitExceeded));
        assert!(sink.len() <= 100_000);
        let n = copy_capped(&mut &[1u8; 10][..], &mut sink, 10).unwrap();
        assert_eq!(n, 10);
    }

    #[test]
    fn byte_cap_across_entries() {
        let chunk = vec![1u8; 300_000];
        let zip = build(&[
            Item::File("a", &chunk, 0o644),
            Item::File("b", &chunk, 0o644),
            Item::File("c", &chunk, 0o644),
        ]);
        let limits = Limits {
            max_unzipped_bytes: 899_999,
            max_entries: 10,
        };
        let err = unzip_err(&zip, &limits);
        assert!(matches!(err, UnzipError::DeclaredTooLarge { .. }), "{err}");
        // Exactly at the limit is fine.
        let out = scratch();
        let limits = Limits {
            max_unzipped_bytes: 900_000,
            ..limits
        };
        let s = safe_unzip(&zip, &out.path().join("x"), &limits).unwrap();
        assert_eq!(s.bytes, 900_000);
    }

    #[test]
    fn entry_count_cap() {
        let zip = build(&[
            Item::File("a", b"", 0o644),
            Item::File("b", b"", 0o644),
            Item::Dir("c/"),
        ]);
        let limits = Limits {
            max_unzipped_bytes: 1000,
            max_entries: 2,
        };
        let err = unzip_err(&zip, &limits);
        assert!(
            matches!(err, UnzipError::TooManyEntries { count: 3, limit: 2 }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "zip archive has 3 entries, more than the limit of 2"
        );
        let limits = Limits {
            max_entries: 3,
            ..limits
        };
        let out = scratch();
        safe_unzip(&zip, &out.path().join("x"), &limits).unwrap();
    }

    #[test]
    fn garbage_empty_and_truncated_input_rejected() {
        let good = build(&[Item::File("a.txt", &[b'a'; 5000], 0o644)]);
        let inputs: [&[u8]; 4] = [
            b"this is definitely not a zip file",
            b"",
            &good[..good.len() / 2],
            &good[..good.len() - 1],
        ];
        for input in inputs {
            let err = unzip_err(input, &Limits::default());
            assert!(matches!(err, UnzipError::InvalidArchive { .. }), "{err}");
            assert!(
                err.to_string().starts_with("could not read zip archive"),
                "{err}"
            );
            assert!(err.is_user_error());
        }
    }

    #[test]
    fn corrupt_entry_data_rejected_with_entry_name() {
        let mut zip = build(&[Item::File("data.txt", &[b'x'; 5000], 0o644)]);
        // Flip bits in the compressed data (just after the 30-byte header and the name).
        let data_start = 30 + "data.txt".len();
        for b in &mut zip[data_start + 2..data_start + 6] {
            *b ^= 0x55;
        }
        let err = unzip_err(&zip, &Limits::default());
        assert!(matches!(err, UnzipError::Decompress { .. }), "{err}");
        assert!(err.to_string().contains("'data.txt'"), "{err}");
    }

    #[test]
    fn encrypted_and_unsupported_compression_rejected() {
        let mut zip = build(&[Item::File("secret.txt", b"x", 0o644)]);
        for_each_header(&mut zip, |z, local, central| {
            z[local + 6] |= 1;
            z[central + 8] |= 1;
        });
        let err = unzip_err(&zip, &Limits::default());
        assert!(matches!(err, UnzipError::Encrypted { .. }), "{err}");
        assert!(err.to_string().contains("'secret.txt'"), "{err}");

        let mut zip = build(&[Item::File("b.txt", b"x", 0o644)]);
        for_each_header(&mut zip, |z, local, central| {
            z[local + 8] = 12; // bzip2
            z[central + 10] = 12;
        });
        let err = unzip_err(&zip, &Limits::default());
        assert!(
            matches!(err, UnzipError::UnsupportedCompression { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("'b.txt'"), "{err}");
    }

    #[test]
    fn existing_destination_rejected() {
        let zip = build(&[Item::File("a", b"a", 0o644)]);
        let out = scratch();
        let err = safe_unzip(&zip, out.path(), &Limits::default()).unwrap_err();
        assert!(matches!(err, UnzipError::DestinationExists { .. }), "{err}");
        assert!(!err.is_user_error());
    }

    #[test]
    fn unpack_once_is_idempotent() {
        let zip = build(&[Item::File("bootstrap", b"#!/bin/sh", 0o755)]);
        let sha = sha256_hex(&zip);
        let store = scratch();
        let store_dir = store.path().join("unpacked");
        let first = unpack_once(&store_dir, &sha, &zip, &Limits::default()).unwrap();
        assert_eq!(first, store_dir.join(&sha));
        let marker = fs::metadata(first.join("bootstrap")).unwrap();
        let again = unpack_once(&store_dir, &sha, &zip, &Limits::default()).unwrap();
        assert_eq!(first, again);
        // Not re-extracted: same inode.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(again.join("bootstrap")).unwrap().ino(),
            marker.ino()
        );
        // Already unpacked content is returned without re-hashing the bytes.
        assert_eq!(
            unpack_once(&store_dir, &sha, b"ignored", &Limits::default()).unwrap(),
            first
        );

        let other = sha256_hex(b"other");
        let err = unpack_once(&store_dir, &other, &zip, &Limits::default()).unwrap_err();
        assert!(matches!(err, UnzipError::HashMismatch { .. }), "{err}");
        for bad in ["../escape", "", &sha.to_uppercase()] {
            let err = unpack_once(&store_dir, bad, &zip, &Limits::default()).unwrap_err();
            assert!(matches!(err, UnzipError::InvalidHash { .. }), "{err}");
        }
        remove_tree(&store_dir).unwrap();
    }

    #[test]
    fn concurrent_unpack_once_agrees() {
        let zip = build(&[
            Item::File("a/b/c.txt", &[3u8; 50_000], 0o644),
            Item::File("d.txt", b"d", 0o644),
        ]);
        let sha = sha256_hex(&zip);
        let store = scratch();
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| unpack_once(store.path(), &sha, &zip, &Limits::default())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(paths.iter().all(|p| *p == store.path().join(&sha)));
        assert_eq!(fs::read(paths[0].join("a/b/c.txt")).unwrap(), [3u8; 50_000]);
        // No temporary directories left behind by the losers.
        let names: Vec<_> = fs::read_dir(store.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![sha.clone()]);
    }

    #[test]
    fn remove_tree_removes_read_only_trees() {
        let zip = build(&[
            Item::File("x/y/z.txt", b"z", 0o644),
            Item::Link("x/link", "y"),
            Item::Dir("empty/"),
        ]);
        let out = scratch();
        let dest = out.path().join("tree");
        safe_unzip(&zip, &dest, &Limits::default()).unwrap();
        assert_eq!(mode(&dest.join("x/y")), 0o555);
        // Make it even less accessible than safe_unzip does.
        fs::set_permissions(dest.join("x/y"), fs::Permissions::from_mode(0o000)).unwrap();
        remove_tree(&dest).unwrap();
        assert!(fs::symlink_metadata(&dest).is_err());
        // Missing path is fine; a plain file is removed.
        remove_tree(&dest).unwrap();
        let file = out.path().join("f");
        fs::write(&file, b"f").unwrap();
        remove_tree(&file).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn sanitize_and_symlink_rules() {
        assert_eq!(sanitize_name("a//b/./c/").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(sanitize_name("a\\b").unwrap(), vec!["a", "b"]);
        assert!(sanitize_name("").unwrap().is_empty());
        assert!(sanitize_name("a..b/c..").is_ok());
        assert!(sanitize_name("dir/C:").is_ok());
        assert!(check_symlink_target(&["a", "b", "l"], "../../x").is_ok());
        assert!(check_symlink_target(&["a", "b", "l"], "../../../x").is_err());
        assert!(check_symlink_target(&["l"], ".").is_ok());
        assert!(check_symlink_target(&["l"], "x/y/z").is_ok());
        assert!(check_symlink_target(&["l"], "x/../y").is_err());
    }
}
