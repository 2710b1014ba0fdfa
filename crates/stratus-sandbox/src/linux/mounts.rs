//! The root file system of an isolated environment, as a plan (data) and its
//! executor. The plan is computed in the server, where allocating is fine; the
//! executor runs in the forked child between `fork` and `exec`, so it only makes
//! system calls on pre-built C strings.
//!
//! The root is a small tmpfs (made read-only once built) holding:
//! - the host's system directories (`/usr`, `/bin`, `/lib*`, `/sbin`, `/etc`),
//!   bound read-only: the interpreters and their shared libraries live there;
//! - the spec's [`Mount`]s (the function's code at `/var/task`, the runtime files,
//!   interpreter installations outside the system dirs);
//! - a minimal `/dev` (null, zero, full, random, urandom, tty bound from the host;
//!   fd/stdin/stdout/stderr links), its own `/proc`, and a private tmpfs `/tmp` of
//!   the spec's size.
//!
//! Nothing else of the host (its `/home`, `/root`, `/work`, `/srv`, the server's data
//! dir, other functions' code) exists in it.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::{Mount, SandboxError};

/// Host directories every environment sees read-only.
pub(crate) const SYSTEM_DIRS: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Device files bound from the host.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Targets a spec mount may not take: they are built by the plan itself.
const RESERVED: [&str; 4] = ["/dev", "/proc", "/tmp", "/.old"];

/// One step of building the root. Paths are absolute host paths under the root's
/// mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `mkdir` (an existing directory is fine).
    Mkdir(CString),
    /// Mount a tmpfs with these options.
    Tmpfs {
        target: CString,
        options: CString,
        flags: libc::c_ulong,
    },
    /// Bind a host directory, then (when read-only) remount it read-only.
    BindDir {
        source: CString,
        target: CString,
        read_only: bool,
    },
    /// Create an empty file and bind a host file (a device) over it.
    BindFile { source: CString, target: CString },
    /// A symbolic link `link -> to`.
    Symlink { link: CString, to: CString },
    /// Mount a `proc`.
    Proc(CString),
}

/// The whole plan: ops in order, then where to pivot.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) root: CString,
    pub(crate) ops: Vec<Op>,
    /// `<root>/.old`, where the old root goes for `pivot_root`.
    pub(crate) put_old: CString,
}

fn cstr(p: impl AsRef<OsStr>) -> Result<CString, SandboxError> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| SandboxError::Spec(format!("path {:?} contains a NUL byte", p.as_ref())))
}

/// True when `p` is absolute with no `.`/`..` parts.
fn is_clean_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Joins an absolute in-sandbox path onto the root.
fn under(root: &Path, target: &Path) -> PathBuf {
    root.join(target.strip_prefix("/").unwrap_or(target))
}

/// Builds the plan for a root mounted at `root` (a host directory) with the spec's
/// mounts and a `/tmp` of `tmp_mb` MB. `host_kind` tells what a system path is on
/// the host (`Some(Ok(dir))`, `Some(Err(symlink target))` or `None` if absent), so
/// tests can describe any host.
pub(crate) fn plan(
    root: &Path,
    mounts: &[Mount],
    tmp_mb: u32,
    host_kind: &dyn Fn(&Path) -> Option<Result<(), PathBuf>>,
) -> Result<Plan, SandboxError> {
    let mut ops = Vec::new();
    let mut made: Vec<PathBuf> = Vec::new();
    let mut mkdir_p = |ops: &mut Vec<Op>, target: &Path| -> Result<(), SandboxError> {
        let mut cur = PathBuf::from("/");
        for c in target.components().skip(1) {
            cur.push(c);
            if !made.contains(&cur) {
                made.push(cur.clone());
                ops.push(Op::Mkdir(cstr(under(root, &cur))?));
            }
        }
        Ok(())
    };
    ops.push(Op::Tmpfs {
        target: cstr(root)?,
        options: cstr("mode=0755,size=4m")?,
        flags: libc::MS_NOSUID | libc::MS_NODEV,
    });
    for dir in SYSTEM_DIRS {
        let dir = Path::new(dir);
        match host_kind(dir) {
            None => {}
            Some(Err(to)) => ops.push(Op::Symlink {
                link: cstr(under(root, dir))?,
                to: cstr(to)?,
            }),
            Some(Ok(())) => {
                mkdir_p(&mut ops, dir)?;
                ops.push(Op::BindDir {
                    source: cstr(dir)?,
                    target: cstr(under(root, dir))?,
                    read_only: true,
                });
            }
        }
    }
    let mut sorted: Vec<&Mount> = mounts.iter().collect();
    // Parents before children, so a nested mount lands on top of its parent.
    sorted.sort_by_key(|m| m.target.components().count());
    for m in sorted {
        if !is_clean_absolute(&m.host) || !is_clean_absolute(&m.target) {
            return Err(SandboxError::Spec(format!(
                "mount {} -> {}: both paths must be absolute, without . or ..",
                m.host.display(),
                m.target.display()
            )));
        }
        let clash = SYSTEM_DIRS
            .iter()
            .chain(RESERVED.iter())
            .find(|d| m.target.starts_with(d));
        if m.target == Path::new("/") || clash.is_some() {
            return Err(SandboxError::Spec(format!(
                "mount target {} is inside {} which the sandbox provides",
                m.target.display(),
                clash.unwrap_or(&"/")
            )));
        }
        mkdir_p(&mut ops, &m.target)?;
        ops.push(Op::BindDir {
            source: cstr(&m.host)?,
            target: cstr(under(root, &m.target))?,
            read_only: m.read_only,
        });
    }
    mkdir_p(&mut ops, Path::new("/dev"))?;
    for d in DEVICES {
        let host = Path::new("/dev").join(d);
        if host_kind(&host).is_some() {
            ops.push(Op::BindFile {
                source: cstr(&host)?,
                target: cstr(under(root, &host))?,
            });
        }
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink {
            link: cstr(under(root, &Path::new("/dev").join(name)))?,
            to: cstr(to)?,
        });
    }
    mkdir_p(&mut ops, Path::new("/tmp"))?;
    ops.push(Op::Tmpfs {
        target: cstr(under(root, Path::new("/tmp")))?,
        options: cstr(format!("mode=1777,size={tmp_mb}m"))?,
        flags: libc::MS_NOSUID | libc::MS_NODEV,
    });
    mkdir_p(&mut ops, Path::new("/proc"))?;
    ops.push(Op::Proc(cstr(under(root, Path::new("/proc")))?));
    mkdir_p(&mut ops, Path::new("/.old"))?;
    Ok(Plan {
        root: cstr(root)?,
        ops,
        put_old: cstr(under(root, Path::new("/.old")))?,
    })
}

/// What a path is on this host, for [`plan`].
pub(crate) fn host_kind(p: &Path) -> Option<Result<(), PathBuf>> {
    let meta = std::fs::symlink_metadata(p).ok()?;
    if meta.file_type().is_symlink() {
        return Some(Err(std::fs::read_link(p).ok()?));
    }
    Some(Ok(()))
}

/// Rewrites a host path to where the environment sees it: under the target of the
/// mount with the longest matching `host` prefix; unchanged when none matches.
pub(crate) fn remap(path: &Path, mounts: &[Mount]) -> PathBuf {
    mounts
        .iter()
        .filter_map(|m| path.strip_prefix(&m.host).ok().map(|rest| (m, rest)))
        .max_by_key(|(m, _)| m.host.components().count())
        .map(|(m, rest)| {
            if rest.as_os_str().is_empty() {
                m.target.clone()
            } else {
                m.target.join(rest)
            }
        })
        .unwrap_or_else(|| path.to_path_buf())
}

/// Rewrites an environment variable's value: an absolute path, or a `:`-separated
/// list of them (`PATH`, `PYTHONPATH`), is remapped part by part; anything else is
/// left alone.
pub(crate) fn remap_value(value: &str, mounts: &[Mount]) -> String {
    if !value.starts_with('/') {
        return value.to_string();
    }
    value
        .split(':')
        .map(|part| {
            if part.starts_with('/') {
                remap(Path::new(part), mounts).display().to_string()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs in the child between fork and exec: no allocation, only system calls on
/// strings borrowed from the launch message.
#[allow(unsafe_code)]
pub(crate) mod exec {
    use std::io;

    use crate::linux::wire::{OpRef, Reader};

    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn malformed() -> io::Error {
        io::Error::from_raw_os_error(libc::EINVAL)
    }

    fn mount(
        source: *const libc::c_char,
        target: *const libc::c_char,
        fstype: *const libc::c_char,
        flags: libc::c_ulong,
        data: *const libc::c_char,
    ) -> io::Result<()> {
        // SAFETY: every pointer is null or a NUL-terminated string borrowed from the
        // message, which outlives the call; mount(2) only reads them.
        check(unsafe { libc::mount(source, target, fstype, flags, data.cast()) })
    }

    fn apply(op: OpRef<'_>) -> io::Result<()> {
        let null = std::ptr::null();
        match op {
            OpRef::Mkdir(p) => {
                // SAFETY: `p` is a NUL-terminated path.
                if unsafe { libc::mkdir(p.as_ptr(), 0o755) } != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                Ok(())
            }
            OpRef::Tmpfs {
                target,
                options,
                flags,
            } => mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                options.as_ptr(),
            ),
            OpRef::BindDir {
                source,
                target,
                read_only,
            } => {
                mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    null,
                )?;
                if read_only {
                    mount(
                        null,
                        target.as_ptr(),
                        null,
                        libc::MS_BIND
                            | libc::MS_REMOUNT
                            | libc::MS_RDONLY
                            | libc::MS_NOSUID
                            | libc::MS_NODEV,
                        null,
                    )?;
                }
                Ok(())
            }
            OpRef::BindFile { source, target } => {
                // SAFETY: `target` is NUL-terminated; the descriptor is closed at once.
                let fd = unsafe {
                    libc::open(
                        target.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    )
                };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `fd` was just opened by us.
                unsafe { libc::close(fd) };
                mount(source.as_ptr(), target.as_ptr(), null, libc::MS_BIND, null)
            }
            OpRef::Symlink { link, to } => {
                // SAFETY: both are NUL-terminated strings.
                check(unsafe { libc::symlink(to.as_ptr(), link.as_ptr()) })
            }
            OpRef::Proc(target) => mount(
                c"proc".as_ptr(),
                target.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                null,
            ),
        }
    }

    /// Builds the root the message describes and pivots into it. The calling process
    /// must be alone in a new mount namespace (and in its new PID namespace, for
    /// `/proc`).
    pub(crate) fn build_root(r: &mut Reader<'_>) -> io::Result<()> {
        let null = std::ptr::null();
        let root = r.cstr().ok_or_else(malformed)?;
        let put_old = r.cstr().ok_or_else(malformed)?;
        let ops = r.u32().ok_or_else(malformed)?;
        // Nothing we mount may propagate back to the host.
        mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            null,
        )?;
        for _ in 0..ops {
            apply(r.op().ok_or_else(malformed)?)?;
        }
        // SAFETY: pivot_root(2) through syscall(2) with two NUL-terminated paths.
        check(unsafe {
            libc::syscall(libc::SYS_pivot_root, root.as_ptr(), put_old.as_ptr()) as libc::c_int
        })?;
        // SAFETY: chdir/umount2/rmdir on static NUL-terminated strings.
        unsafe {
            check(libc::chdir(c"/".as_ptr()))?;
            check(libc::umount2(c"/.old".as_ptr(), libc::MNT_DETACH))?;
            libc::rmdir(c"/.old".as_ptr());
        }
        // The root itself (mount points only) becomes read-only.
        mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            null,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host: &str, target: &str) -> Mount {
        Mount {
            host: host.into(),
            target: target.into(),
            read_only: true,
        }
    }

    /// A merged-/usr host: /bin, /lib, /lib64, /sbin are links into /usr.
    fn merged(p: &Path) -> Option<Result<(), PathBuf>> {
        match p.to_str()? {
            "/bin" => Some(Err("usr/bin".into())),
            "/lib" => Some(Err("usr/lib".into())),
            "/lib64" => Some(Err("usr/lib64".into())),
            "/sbin" => Some(Err("usr/sbin".into())),
            "/usr" | "/etc" | "/dev/null" | "/dev/zero" | "/dev/urandom" => Some(Ok(())),
            _ => None,
        }
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn plan_builds_a_root_from_system_dirs_and_mounts() {
        let mounts = vec![
            m("/data/code/abc", "/var/task"),
            m("/data/runtimes", "/var/runtime"),
            m(
                "/root/.pyenv/versions/3.11.7",
                "/root/.pyenv/versions/3.11.7",
            ),
        ];
        let p = plan(Path::new("/data/tmp/env-1"), &mounts, 600, &merged).unwrap();
        assert_eq!(p.root, c("/data/tmp/env-1"));
        assert_eq!(p.put_old, c("/data/tmp/env-1/.old"));
        assert!(matches!(&p.ops[0], Op::Tmpfs { target, .. } if *target == c("/data/tmp/env-1")));
        assert!(p.ops.contains(&Op::Symlink {
            link: c("/data/tmp/env-1/bin"),
            to: c("usr/bin")
        }));
        assert!(p.ops.contains(&Op::BindDir {
            source: c("/usr"),
            target: c("/data/tmp/env-1/usr"),
            read_only: true
        }));
        assert!(p.ops.contains(&Op::BindDir {
            source: c("/data/code/abc"),
            target: c("/data/tmp/env-1/var/task"),
            read_only: true
        }));
        // Each ancestor of a nested target is made once, before the bind.
        let mk = |s: &str| p.ops.iter().position(|o| *o == Op::Mkdir(c(s)));
        let root_dir = mk("/data/tmp/env-1/root").unwrap();
        let leaf = mk("/data/tmp/env-1/root/.pyenv/versions/3.11.7").unwrap();
        assert!(root_dir < leaf);
        assert_eq!(
            p.ops
                .iter()
                .filter(|o| **o == Op::Mkdir(c("/data/tmp/env-1/var")))
                .count(),
            1
        );
        assert!(p.ops.contains(&Op::Tmpfs {
            target: c("/data/tmp/env-1/tmp"),
            options: c("mode=1777,size=600m"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
        }));
        assert!(p.ops.contains(&Op::BindFile {
            source: c("/dev/null"),
            target: c("/data/tmp/env-1/dev/null")
        }));
        assert!(
            !p.ops
                .iter()
                .any(|o| matches!(o, Op::BindFile { source, .. } if *source == c("/dev/tty"))),
            "absent devices are skipped"
        );
        assert!(p.ops.contains(&Op::Proc(c("/data/tmp/env-1/proc"))));
        // Nothing else of the host: no bind of /data, /root or /work itself.
        for op in &p.ops {
            if let Op::BindDir { source, .. } = op {
                let s = source.to_str().unwrap();
                assert!(
                    ["/usr", "/etc"].contains(&s) || mounts.iter().any(|m| m.host == Path::new(s)),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn plan_refuses_bad_mounts() {
        let bad = [
            m("relative", "/var/task"),
            m("/a/../etc", "/var/task"),
            m("/a", "/usr/local/x"),
            m("/a", "/tmp"),
            m("/a", "/proc/1"),
            m("/a", "/"),
        ];
        for b in bad {
            let err = plan(Path::new("/r"), std::slice::from_ref(&b), 512, &merged).unwrap_err();
            assert!(matches!(err, SandboxError::Spec(_)), "{b:?}: {err}");
        }
    }

    #[test]
    fn remap_uses_the_longest_prefix() {
        let mounts = vec![
            m("/data/code/abc", "/var/task"),
            m("/data", "/srv"),
            m("/opt/py", "/opt/py"),
        ];
        assert_eq!(
            remap(Path::new("/data/code/abc"), &mounts),
            Path::new("/var/task")
        );
        assert_eq!(
            remap(Path::new("/data/code/abc/bootstrap"), &mounts),
            Path::new("/var/task/bootstrap")
        );
        assert_eq!(
            remap(Path::new("/data/code/abcd"), &mounts),
            Path::new("/srv/code/abcd")
        );
        assert_eq!(
            remap(Path::new("/usr/bin/node"), &mounts),
            Path::new("/usr/bin/node")
        );
        assert_eq!(
            remap_value("/opt/py/bin:/data/code/abc/lib:/usr/bin", &mounts),
            "/opt/py/bin:/var/task/lib:/usr/bin"
        );
        assert_eq!(
            remap_value("http://127.0.0.1:9002", &mounts),
            "http://127.0.0.1:9002"
        );
        assert_eq!(remap_value("a:/data/code/abc", &mounts), "a:/data/code/abc");
    }
}
