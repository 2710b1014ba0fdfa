//! `stratus-sandbox` owns starting, limiting and killing one execution environment's
//! process tree. It knows nothing about functions or HTTP: the caller hands it a
//! [`LaunchSpec`] (program, arguments, a complete environment, working directory and a
//! private temp dir) and gets back a [`Process`] whose stdout and stderr are captured.
//!
//! The seam is the [`Driver`] trait. Today there is one driver, [`ProcessDriver`]:
//! a plain child process in its own process group, with a clean environment, a private
//! `TMPDIR`, and `PR_SET_PDEATHSIG` so that an environment's process dies with the
//! server (processes it started itself are killed with its group on destroy, but can
//! outlive a server that is itself killed with SIGKILL).
//! It does not isolate: no namespaces, cgroups or resource limits; the process runs
//! as the server's user and sees the host.
//!
//! The isolating driver is [`LinuxDriver`] (module `linux`): namespaces, a built root
//! with the spec's [`Mount`]s, a cgroup per environment and a seccomp filter. Both
//! drivers take the same [`LaunchSpec`]; paths in it are host paths, and the linux
//! driver rewrites those under a mount's `host` to the mount's `target`.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use tokio::net::unix::pipe;

mod linux;

pub use linux::{
    cgroup::{CgroupVersion, CpuLimit},
    egress::{
        pool::{Ipv4Cidr, VETH_PREFIX},
        EgressError, EgressMode, EgressOptions,
    },
    net::{NetListeners, NetNs},
    probe, LinuxDriver, LinuxOptions, RUNTIME_API_ADDR, STRATUS_API_ADDR,
};

/// Errors from starting or controlling an environment.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The private temp dir could not be created.
    #[error("cannot create environment temp dir {path}: {source}")]
    CreateTmpDir { path: PathBuf, source: io::Error },
    /// The program could not be started (missing, not executable, ...).
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    /// The captured output pipes could not be set up.
    #[error("cannot capture output of {program}: {source}")]
    Capture { program: String, source: io::Error },
    /// The environment's cgroup could not be created or configured.
    #[error("cannot set up the environment's cgroup {path}: {source}")]
    Cgroup { path: PathBuf, source: io::Error },
    /// The environment's network namespace could not be created.
    #[error("cannot create the environment's network namespace: {0}")]
    Network(io::Error),
    /// The spec asks for something the driver cannot build (a bad mount).
    #[error("invalid launch spec: {0}")]
    Spec(String),
    /// The environment's route to the outside could not be made.
    #[error(transparent)]
    Egress(#[from] EgressError),
}

/// A host directory made visible inside an isolated environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute host path.
    pub host: PathBuf,
    /// Absolute path inside the environment.
    pub target: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Whether an environment may reach beyond its own loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Its own network namespace with only `lo` (the default).
    #[default]
    Isolated,
    /// Egress allowed. Under the linux driver: its own namespace plus a routed veth
    /// pair behind NAT ([`EgressMode::Routed`]), or the host's network
    /// ([`EgressMode::Host`]); under the process driver, the host's network.
    Egress,
}

/// What a driver isolates, for start-up output, health and `stratus info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// `linux` or `process`.
    pub driver: &'static str,
    /// Whether environments are isolated from the host and each other.
    pub isolated: bool,
    /// `v1` or `v2` under the linux driver.
    pub cgroup: Option<&'static str>,
    /// Whether the seccomp filter is applied.
    pub seccomp: bool,
    /// How egress functions reach the outside: `routed 100.96.0.0/16`, `host`, or
    /// `unavailable: why`.
    pub egress: String,
    /// Routed-egress slots (veth pairs, addresses) in use now.
    pub egress_in_use: Option<u32>,
    /// Environments pinned now because they use up their CPU quota (linux driver).
    pub pinned: Option<u32>,
}

/// Everything needed to start an environment's process.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Program to exec (an absolute path is best: the environment has a clean `PATH`).
    pub program: PathBuf,
    /// Arguments after the program name.
    pub args: Vec<OsString>,
    /// Working directory (the function's code root).
    pub cwd: PathBuf,
    /// The complete environment; nothing is inherited from the server.
    pub env: Vec<(String, String)>,
    /// A private, writable temp dir for this environment, exposed as `TMPDIR`.
    /// It is created on start and removed when the process is destroyed.
    /// Under the linux driver it is the host mount point of the environment's root
    /// (invisible to the host), and `TMPDIR` is `/tmp`.
    pub tmp_dir: PathBuf,
    /// Host directories to show inside an isolated environment (ignored by the process
    /// driver, which runs with host paths).
    pub mounts: Vec<Mount>,
    /// Memory limit in MB (the function's MemorySize).
    pub memory_mb: u32,
    /// Size of the private `/tmp` in MB (EphemeralStorage).
    pub tmp_mb: u32,
    /// Network mode.
    pub network: Network,
    /// The network namespace made by [`Driver::new_netns`] for this environment, when
    /// its listeners were created there.
    pub netns: Option<Arc<NetNs>>,
}

impl LaunchSpec {
    /// A spec with the defaults for everything but program, arguments, cwd and env.
    pub fn new(program: PathBuf, args: Vec<OsString>, cwd: PathBuf, tmp_dir: PathBuf) -> Self {
        Self {
            program,
            args,
            cwd,
            env: Vec::new(),
            tmp_dir,
            mounts: Vec::new(),
            memory_mb: 128,
            tmp_mb: 512,
            network: Network::Isolated,
            netns: None,
        }
    }
}

/// Starts environments. Implementations decide how isolated they are.
pub trait Driver: Send + Sync + fmt::Debug {
    /// Starts the process described by `spec`.
    fn start(&self, spec: &LaunchSpec) -> Result<Process, SandboxError>;

    /// A fresh network namespace with `lo` up and the environment's listeners bound
    /// inside it (and, for [`Network::Egress`] when routed, a route out), or `None`
    /// when this driver gives an environment with `network` the host's network.
    fn new_netns(
        &self,
        network: Network,
    ) -> Result<Option<(Arc<NetNs>, NetListeners)>, SandboxError> {
        let _ = network;
        Ok(None)
    }

    /// What this driver isolates.
    fn info(&self) -> SandboxInfo;

    /// The server is stopping: release whatever was prepared ahead (parked keepers).
    fn shutdown(&self) {}
}

/// Shared handle for killing an environment's tree from anywhere.
pub type Killer = Arc<TreeKiller>;

/// A started environment process with its captured output.
#[derive(Debug)]
pub struct Process {
    child: tokio::process::Child,
    killer: Killer,
    /// Captured standard output.
    pub stdout: Option<OutputPipe>,
    /// Captured standard error.
    pub stderr: Option<OutputPipe>,
}

impl Process {
    /// The root process id.
    pub fn pid(&self) -> u32 {
        self.killer.pid
    }

    /// A handle that can kill the whole tree and measure its memory.
    pub fn killer(&self) -> Killer {
        self.killer.clone()
    }

    /// Waits for the root process to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }
}

/// Kills a process tree and measures its memory. Cheap to clone via [`Killer`].
#[derive(Debug)]
pub struct TreeKiller {
    pid: u32,
    tmp_dir: PathBuf,
    cgroup: Option<linux::cgroup::Cgroup>,
    /// The routed-egress slot (veth pair, address), freed when the tree is killed.
    egress: parking_lot::Mutex<Option<linux::egress::Lease>>,
}

impl TreeKiller {
    /// Root process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGKILL to the process group and to every descendant found in `/proc`
    /// (descendants that moved to another group included), then removes the temp dir.
    /// Safe to call more than once.
    /// Under the linux driver every process of the environment's cgroup is killed
    /// too, and the cgroup is removed once empty.
    pub fn kill_tree(&self) {
        let pids = descendants(self.pid);
        sys::kill_group(self.pid);
        for pid in pids {
            sys::kill_pid(pid);
        }
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
            cg.remove();
        }
        drop(self.egress.lock().take());
        // Under the linux driver this is only a mount point (the root lives in the
        // environment's own mount namespace), so this removes an empty directory.
        let _ = std::fs::remove_dir_all(&self.tmp_dir);
    }

    /// Whether the kernel's OOM killer killed a process of this environment
    /// (linux driver; always false under the process driver).
    pub fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|cg| cg.oom_killed())
    }

    /// Applies the environment's CPU quota (linux driver; the scheduler calls it
    /// once init is over, so init runs unthrottled).
    pub fn limit_cpu(&self) {
        if let Some(cg) = &self.cgroup {
            cg.limit_cpu();
        }
    }

    /// Peak memory of the environment in bytes: from the cgroup under the linux
    /// driver, else the sum of `VmHWM` over the root and its live descendants.
    /// Returns 0 when it cannot be read (process already gone).
    pub fn max_memory_bytes(&self) -> u64 {
        if let Some(peak) = self.cgroup.as_ref().and_then(|cg| cg.peak_memory()) {
            return peak;
        }
        let mut total = read_hwm_kb(self.pid);
        for pid in descendants(self.pid) {
            total += read_hwm_kb(pid);
        }
        total * 1024
    }
}

fn read_hwm_kb(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// All descendants of `root`, read from `/proc/<pid>/task/<tid>/children`.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !out.contains(&child) && out.len() < 4096 {
                    out.push(child);
                    stack.push(child);
                }
            }
        }
    }
    out
}

/// One captured output stream: a direct (non-blocking) reader for draining whatever
/// is buffered *right now*, plus a [`Readiness`] registered with the reactor for
/// waiting. Draining does not trust cached readiness, so at the end of an invocation
/// every line a function wrote before responding is seen.
#[derive(Debug)]
pub struct OutputPipe {
    direct: File,
    rx: Option<pipe::Receiver>,
}

/// Waits for data on an [`OutputPipe`].
#[derive(Debug)]
pub struct Readiness {
    rx: pipe::Receiver,
}

impl Readiness {
    /// Resolves when the pipe may have data (or reached end of stream).
    pub async fn wait(&self) -> io::Result<()> {
        self.rx.readable().await
    }

    /// Runs `drain` (which reads through the direct reader until `WouldBlock`);
    /// a `WouldBlock` clears the cached readiness. Returns true at end of stream or
    /// on an error.
    pub fn clear_if_empty(&self, drain: impl FnOnce() -> io::Result<bool>) -> bool {
        match self.rx.try_io(drain) {
            Ok(eof) => eof,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }
}

impl OutputPipe {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        let direct = File::from(fd.try_clone()?);
        // Sets O_NONBLOCK on the shared open file, so `direct` never blocks either.
        let rx = pipe::Receiver::from_owned_fd(fd)?;
        Ok(Self {
            direct,
            rx: Some(rx),
        })
    }

    /// Waits until data is available, then reads it. `Ok(0)` is end of stream.
    /// Not available after [`OutputPipe::take_readiness`].
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        match &mut self.rx {
            Some(rx) => rx.read(buf).await,
            None => Err(io::Error::other("readiness was taken")),
        }
    }

    /// Reads what is buffered now; `Err(WouldBlock)` when the pipe is empty.
    pub fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.direct.read(buf)
    }

    /// Takes the reactor registration, to wait for data elsewhere.
    pub fn take_readiness(&mut self) -> Option<Readiness> {
        self.rx.take().map(|rx| Readiness { rx })
    }
}

/// The portable driver: a plain child process in its own process group.
#[derive(Debug, Default, Clone)]
pub struct ProcessDriver;

impl Driver for ProcessDriver {
    fn start(&self, spec: &LaunchSpec) -> Result<Process, SandboxError> {
        std::fs::create_dir_all(&spec.tmp_dir).map_err(|source| SandboxError::CreateTmpDir {
            path: spec.tmp_dir.clone(),
            source,
        })?;
        let program = spec.program.display().to_string();
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .current_dir(&spec.cwd)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TMPDIR", &spec.tmp_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        sys::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| {
            let _ = std::fs::remove_dir_all(&spec.tmp_dir);
            SandboxError::Spawn {
                program: program.clone(),
                source,
            }
        })?;
        let pid = child.id().unwrap_or(0);
        let killer = Arc::new(TreeKiller {
            pid,
            tmp_dir: spec.tmp_dir.clone(),
            cgroup: None,
            egress: parking_lot::Mutex::new(None),
        });
        let capture = |fd: io::Result<OwnedFd>| fd.and_then(OutputPipe::new);
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

    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            driver: "process",
            isolated: false,
            cgroup: None,
            seccomp: false,
            egress: "host".into(),
            egress_in_use: None,
            pinned: None,
        }
    }
}

/// Resolves `name` to an absolute, real executable path by searching `PATH`
/// and following symlinks (a shim script can cost more than the runtime's start).
pub fn which(name: &str) -> Option<PathBuf> {
    let candidate = Path::new(name);
    if candidate.is_absolute() || name.contains('/') {
        return is_executable(candidate).then(|| candidate.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[allow(unsafe_code)]
mod sys {
    /// Kills the process group led by `pid`.
    pub(super) fn kill_group(pid: u32) {
        if pid == 0 {
            return;
        }
        // SAFETY: kill(2) with a negative pid signals a process group; it has no
        // memory-safety preconditions. pid 0 is excluded above (it would mean our group).
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }

    /// Kills one process.
    pub(super) fn kill_pid(pid: u32) {
        if pid <= 1 {
            return;
        }
        // SAFETY: kill(2) has no memory-safety preconditions; pids 0 and 1 are excluded.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }

    /// Asks the kernel to SIGKILL the child when the server dies, so a crashed or
    /// SIGKILLed server never leaves environments behind.
    pub(super) fn die_with_parent(cmd: &mut tokio::process::Command) {
        // SAFETY: the closure runs between fork and exec and calls only prctl(2),
        // which is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, tmp: &Path) -> LaunchSpec {
        let mut s = LaunchSpec::new(
            PathBuf::from("/bin/sh"),
            vec!["-c".into(), script.into()],
            PathBuf::from("/"),
            tmp.join("env-tmp"),
        );
        s.env = vec![("FOO".into(), "bar".into())];
        s
    }

    async fn read_all(p: &mut OutputPipe) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = p.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn clean_environment_and_private_tmpdir() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec("echo $FOO $HOME $TMPDIR; echo err >&2", dir.path());
        let mut p = ProcessDriver.start(&s).unwrap();
        let out = read_all(p.stdout.as_mut().unwrap()).await;
        let err = read_all(p.stderr.as_mut().unwrap()).await;
        assert_eq!(out.trim(), format!("bar {}", s.tmp_dir.display()));
        assert_eq!(err.trim(), "err");
        assert!(p.wait().await.unwrap().success());
        assert!(s.tmp_dir.is_dir());
        p.killer().kill_tree();
        assert!(!s.tmp_dir.exists(), "temp dir removed on destroy");
    }

    #[tokio::test]
    async fn kill_tree_kills_grandchildren_and_measures_memory() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let mut p = ProcessDriver.start(&spec(&script, dir.path())).unwrap();
        let mut grandchild = None;
        for _ in 0..200 {
            if let Ok(s) = std::fs::read_to_string(&pidfile) {
                if let Ok(pid) = s.trim().parse::<u32>() {
                    grandchild = Some(pid);
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let grandchild = grandchild.expect("grandchild started");
        assert!(p.killer().max_memory_bytes() > 0);
        p.killer().kill_tree();
        let status = p.wait().await.unwrap();
        assert!(!status.success());
        for _ in 0..200 {
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
            // Gone, or a zombie waiting for its (dead) parent's reaper.
            if stat.map(|s| s.contains(") Z")).unwrap_or(true) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("grandchild {grandchild} survived kill_tree");
    }

    #[tokio::test]
    async fn read_now_sees_buffered_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ProcessDriver
            .start(&spec("echo hello; sleep 5", dir.path()))
            .unwrap();
        let out = p.stdout.as_mut().unwrap();
        let mut buf = [0u8; 64];
        let mut got = 0;
        for _ in 0..500 {
            match out.read_now(&mut buf) {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..got], b"hello\n");
        p.killer().kill_tree();
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("", dir.path());
        s.program = PathBuf::from("/nonexistent/bootstrap");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { ProcessDriver.start(&s).unwrap_err() });
        assert!(err.to_string().contains("/nonexistent/bootstrap"), "{err}");
    }

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-program-xyz").is_none());
    }
}
