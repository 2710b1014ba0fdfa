//! The `linux` driver: each environment in its own mount, PID, IPC, UTS and network
//! namespaces, a root built from the spec's mounts (see `mounts`), a cgroup with its
//! memory, CPU and pids limits (`cgroup`), an unprivileged user, and a seccomp
//! filter (`seccomp`). Its network namespace and listeners come from `net`.
//!
//! How a process is started: the server forks a *keeper* (the process the scheduler
//! waits on) that joins the cgroup, enters the network namespace, unshares the other
//! namespaces and forks again. The grandchild is PID 1 of the new PID namespace: it
//! builds the root, pivots into it, drops to the sandbox user, installs the seccomp
//! filter and execs the runtime. The keeper closes every descriptor, waits for it and
//! exits the same way (same code, or same signal), so an OOM kill of the runtime
//! still reads `signal: killed`. When PID 1 dies the kernel kills everything else in
//! its namespace.

pub(crate) mod cgroup;
pub(crate) mod mounts;
pub(crate) mod net;
pub(crate) mod seccomp;

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use seccompiler::BpfProgram;

pub use net::{RUNTIME_API_ADDR, STRATUS_API_ADDR};

use crate::{
    Driver, LaunchSpec, NetListeners, NetNs, Network, OutputPipe, Process, SandboxError,
    SandboxInfo, TreeKiller,
};

/// Settings of the linux driver.
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    /// Install the seccomp filter.
    pub seccomp: bool,
    /// Most processes (and threads) one environment may have.
    pub pids_max: u32,
    /// Limit CPU in proportion to memory (after init).
    pub cpu_quota: bool,
    /// Where the cgroup file systems are mounted.
    pub cgroup_root: PathBuf,
    /// User and group the function runs as (`nobody` by default).
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
}

impl Default for LinuxOptions {
    fn default() -> Self {
        Self {
            seccomp: true,
            pids_max: 1024,
            cpu_quota: true,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            uid: 65534,
            gid: 65534,
        }
    }
}

/// The isolating driver. See the module documentation.
#[derive(Debug)]
pub struct LinuxDriver {
    opts: LinuxOptions,
    layout: cgroup::Layout,
    bpf: Option<Arc<BpfProgram>>,
}

/// Whether the linux driver can run here: creates it (which starts a probe
/// environment) and says why not when it cannot.
pub fn probe(opts: LinuxOptions) -> Result<LinuxDriver, String> {
    LinuxDriver::new(opts)
}

impl LinuxDriver {
    /// Detects the cgroup hierarchy, compiles the seccomp filter and starts one
    /// throw-away environment (`/bin/sh -c 'exit 0'`) to prove namespaces, mounts and
    /// cgroups work here.
    pub fn new(opts: LinuxOptions) -> Result<Self, String> {
        if !cfg!(target_os = "linux") {
            return Err("the linux driver needs Linux".into());
        }
        // SAFETY-free: geteuid has no preconditions, but it is a libc call.
        if sys::euid() != 0 {
            return Err("the linux driver needs root (namespaces, mounts and cgroups)".into());
        }
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let layout = cgroup::Layout::detect(&opts.cgroup_root, &proc_cgroup)
            .map_err(|e| format!("cgroups: {e}"))?;
        let bpf = if opts.seccomp {
            Some(Arc::new(seccomp::compile().map_err(|e| e.to_string())?))
        } else {
            None
        };
        let driver = Self { opts, layout, bpf };
        let dir = std::env::temp_dir().join(format!("stratus-probe-{}", std::process::id()));
        let mut spec = LaunchSpec::new(
            "/bin/sh".into(),
            vec!["-c".into(), "exit 0".into()],
            "/".into(),
            dir.clone(),
        );
        spec.memory_mb = 64;
        let (mut cmd, cg) = driver.command(&spec).map_err(|e| e.to_string())?;
        let status = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot start an isolated process: {e}"));
        cg.kill_all();
        cg.remove();
        let _ = std::fs::remove_dir(&dir);
        let status = status?;
        if !status.success() {
            return Err(format!("an isolated probe process failed ({status})"));
        }
        Ok(driver)
    }

    /// The cgroup version in use.
    pub fn cgroup_version(&self) -> cgroup::CgroupVersion {
        self.layout.version
    }

    /// Builds the command for `spec`, with its cgroup created.
    fn command(
        &self,
        spec: &LaunchSpec,
    ) -> Result<(std::process::Command, cgroup::Cgroup), SandboxError> {
        std::fs::create_dir_all(&spec.tmp_dir).map_err(|source| SandboxError::CreateTmpDir {
            path: spec.tmp_dir.clone(),
            source,
        })?;
        let plan = mounts::plan(&spec.tmp_dir, &spec.mounts, spec.tmp_mb, &mounts::host_kind)?;
        let remap_os = |a: &OsString| -> OsString {
            if a.as_bytes().starts_with(b"/") {
                mounts::remap(Path::new(a), &spec.mounts).into_os_string()
            } else {
                a.clone()
            }
        };
        let program = mounts::remap(&spec.program, &spec.mounts);
        let cwd = mounts::remap(&spec.cwd, &spec.mounts);
        let netns = match spec.network {
            Network::Host => None,
            Network::Isolated => match &spec.netns {
                Some(ns) => Some(ns.clone()),
                None => Some(Arc::new(net::create().map_err(SandboxError::Network)?.0)),
            },
        };
        let cg = self.layout.create(
            cgroup::Limits {
                memory_mb: spec.memory_mb.max(16),
                pids: self.opts.pids_max,
            },
            self.opts
                .cpu_quota
                .then(|| cgroup::CpuLimit::for_memory(spec.memory_mb)),
        )?;
        let cstr = |b: &[u8]| {
            CString::new(b).map_err(|_| SandboxError::Spec("a path contains a NUL byte".into()))
        };
        let setup = ChildSetup {
            procs: cg
                .procs_files()
                .iter()
                .map(|p| cstr(p.as_os_str().as_bytes()))
                .collect::<Result<_, _>>()?,
            netns,
            plan,
            cwd: cstr(cwd.as_os_str().as_bytes())?,
            uid: self.opts.uid,
            gid: self.opts.gid,
            bpf: self.bpf.clone(),
        };
        let mut cmd = std::process::Command::new(&program);
        cmd.args(spec.args.iter().map(remap_os))
            .env_clear()
            .envs(
                spec.env
                    .iter()
                    .map(|(k, v)| (k.as_str(), mounts::remap_value(v, &spec.mounts))),
            )
            .env("TMPDIR", "/tmp")
            .stdin(Stdio::null())
            .process_group(0);
        sys::in_sandbox(&mut cmd, setup);
        Ok((cmd, cg))
    }
}

/// What the child needs, all built before `fork`.
struct ChildSetup {
    procs: Vec<CString>,
    netns: Option<Arc<NetNs>>,
    plan: mounts::Plan,
    cwd: CString,
    uid: u32,
    gid: u32,
    bpf: Option<Arc<BpfProgram>>,
}

impl Driver for LinuxDriver {
    fn start(&self, spec: &LaunchSpec) -> Result<Process, SandboxError> {
        let (cmd, cg) = self.command(spec)?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = spec.program.display().to_string();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(source) => {
                cg.kill_all();
                cg.remove();
                let _ = std::fs::remove_dir(&spec.tmp_dir);
                return Err(SandboxError::Spawn { program, source });
            }
        };
        let killer = Arc::new(TreeKiller {
            pid: child.id().unwrap_or(0),
            tmp_dir: spec.tmp_dir.clone(),
            cgroup: Some(cg),
        });
        let capture = |fd: std::io::Result<std::os::fd::OwnedFd>| fd.and_then(OutputPipe::new);
        let stdout = child.stdout.take().map(|s| capture(s.into_owned_fd()));
        let stderr = child.stderr.take().map(|s| capture(s.into_owned_fd()));
        let (stdout, stderr) = match (stdout.transpose(), stderr.transpose()) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(source), _) | (_, Err(source)) => {
                killer.kill_tree();
                return Err(SandboxError::Capture { program, source });
            }
        };
        Ok(Process {
            child,
            killer,
            stdout,
            stderr,
        })
    }

    fn new_netns(&self) -> Result<Option<(Arc<NetNs>, NetListeners)>, SandboxError> {
        let (ns, listeners) = net::create().map_err(SandboxError::Network)?;
        Ok(Some((Arc::new(ns), listeners)))
    }

    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            driver: "linux",
            isolated: true,
            cgroup: Some(self.layout.version.name()),
            seccomp: self.bpf.is_some(),
        }
    }
}

#[allow(unsafe_code)]
mod sys {
    use std::io;

    use super::ChildSetup;

    pub(super) fn euid() -> u32 {
        // SAFETY: geteuid(2) cannot fail and has no preconditions.
        unsafe { libc::geteuid() }
    }

    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Writes our pid to a `cgroup.procs` file without allocating.
    fn join_cgroup(file: &std::ffi::CStr) -> io::Result<()> {
        let mut buf = [0u8; 16];
        // SAFETY: getpid(2) has no preconditions.
        let mut pid = unsafe { libc::getpid() } as u32;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        // SAFETY: `file` is NUL-terminated; the descriptor is closed below; the
        // written bytes are in `buf`.
        unsafe {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::write(fd, buf[i..].as_ptr().cast(), buf.len() - i);
            let err = io::Error::last_os_error();
            libc::close(fd);
            if n < 0 {
                return Err(err);
            }
        }
        Ok(())
    }

    /// The keeper: closes everything (so the spawner's exec-status pipe and the
    /// output pipes are held only by the runtime), waits for PID 1 of the new
    /// namespace and exits the same way.
    fn keep(child: libc::pid_t) -> ! {
        // SAFETY: only system calls on our own process; no memory is shared with
        // anything else (we are a freshly forked single-threaded child).
        unsafe {
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            let mut status = 0;
            loop {
                let r = libc::waitpid(child, &mut status, 0);
                if r == child {
                    break;
                }
                if r < 0 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(1);
                }
            }
            if libc::WIFEXITED(status) {
                libc::_exit(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
                libc::_exit(128 + sig);
            }
            libc::_exit(1)
        }
    }

    /// Runs between fork and exec of the keeper. See the module documentation.
    pub(super) fn in_sandbox(cmd: &mut std::process::Command, setup: ChildSetup) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child and makes only
        // async-signal-safe system calls on data built before the fork (`setup` is
        // moved in and never allocates or frees here).
        unsafe {
            cmd.pre_exec(move || {
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
                for f in &setup.procs {
                    join_cgroup(f)?;
                }
                if let Some(ns) = &setup.netns {
                    check(libc::setns(ns.raw_fd(), libc::CLONE_NEWNET))?;
                }
                check(libc::unshare(
                    libc::CLONE_NEWNS
                        | libc::CLONE_NEWPID
                        | libc::CLONE_NEWIPC
                        | libc::CLONE_NEWUTS,
                ))?;
                let pid = libc::fork();
                if pid < 0 {
                    return Err(io::Error::last_os_error());
                }
                if pid > 0 {
                    keep(pid);
                }
                // PID 1 of the new namespace from here on.
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
                let host = b"sandbox";
                check(libc::sethostname(host.as_ptr().cast(), host.len()))?;
                super::mounts::exec::build_root(&setup.plan)?;
                check(libc::chdir(setup.cwd.as_ptr()))?;
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(setup.gid))?;
                check(libc::setuid(setup.uid))?;
                if let Some(bpf) = &setup.bpf {
                    seccompiler::apply_filter(bpf)
                        .map_err(|_| io::Error::from_raw_os_error(libc::EPERM))?;
                }
                Ok(())
            });
        }
    }
}
