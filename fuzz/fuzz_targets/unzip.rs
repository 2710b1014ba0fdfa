//! Arbitrary bytes → `stratus_package::safe_unzip` into a fresh directory, as the
//! server unpacks an uploaded function zip. Whatever the bytes, nothing may be
//! written outside the destination, no symlink in the tree may point out of it, the
//! byte and entry limits hold, and a failure leaves nothing behind.
#![no_main]

use std::fs;
use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use stratus_fuzz::scratch_dir;
use stratus_package::{remove_tree, safe_unzip, Limits};

const LIMITS: Limits = Limits {
    max_unzipped_bytes: 4 * 1024 * 1024,
    max_entries: 2_000,
};

fuzz_target!(|data: &[u8]| {
    // scratch/jail/deep/out: an escape by `..` lands in `deep` or `jail`, where the
    // check below finds it.
    let jail = scratch_dir().join("jail");
    let parent = jail.join("deep");
    let dest = parent.join("out");
    let _ = remove_tree(&jail);
    fs::create_dir_all(&parent).unwrap();
    let result = safe_unzip(data, &dest, &LIMITS);
    match &result {
        Ok(summary) => {
            assert!(summary.bytes <= LIMITS.max_unzipped_bytes);
            let mut count = 0u64;
            let mut bytes = 0u64;
            check_tree(&dest, &dest, &mut count, &mut bytes);
            assert_eq!(count, summary.files, "files counted");
            assert_eq!(bytes, summary.bytes, "bytes counted");
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                fs::symlink_metadata(&dest).is_err(),
                "a failed unzip left {dest:?}: {e}"
            );
        }
    }
    // Nothing but `out` anywhere under the jail (no temp dir left, no escapee).
    assert_eq!(names(&jail), vec!["deep".to_string()]);
    let expected: Vec<String> = if result.is_ok() {
        vec!["out".into()]
    } else {
        vec![]
    };
    assert_eq!(names(&parent), expected, "{result:?}");
    remove_tree(&jail).unwrap();
});

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every entry under `dir` is a plain file, a directory or a symlink resolving
/// (lexically, as the kernel would) inside `root`; counts files and bytes.
fn check_tree(root: &Path, dir: &Path, count: &mut u64, bytes: &mut u64) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            *count += 1;
            *bytes += target.as_os_str().len() as u64;
            assert!(
                target.is_relative(),
                "absolute symlink {path:?} -> {target:?}"
            );
            let resolved = lexical(&path.parent().unwrap().join(&target));
            assert!(
                resolved.starts_with(root),
                "symlink {path:?} -> {target:?} leaves the tree"
            );
            // And as the kernel resolves it, through any other symlinks on the way.
            if let Ok(real) = fs::canonicalize(&path) {
                let real_root = fs::canonicalize(root).unwrap();
                assert!(
                    real.starts_with(&real_root),
                    "symlink {path:?} -> {target:?} resolves to {real:?}"
                );
            }
        } else if ft.is_dir() {
            check_tree(root, &path, count, bytes);
        } else {
            assert!(ft.is_file(), "special file {path:?}");
            *count += 1;
            *bytes += meta.len();
        }
    }
}

fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}
