//! The `linux` driver: each environment in its own mount, PID, IPC, UTS and network
//! namespaces, a root built from the spec's mounts (see `mounts`), a cgroup with its
//! memory, CPU and pids limits (`cgroup`), an unprivileged user, and a seccomp
//! filter (`seccomp`). Its network namespace and listeners come from `net`. An
//! environment that uses up its CPU quota is pinned to its share of the CPUs while it
//! does (`cpus`).
//!
//! How a process is started. The server forks a *keeper* (the process the scheduler
//! waits on) that joins a fresh cgroup, enters a fresh network namespace, unshares
//! the other namespaces, closes every descriptor but two pipes, and *parks*: it waits
//! for a launch message (`wire`). Joining a cgroup waits for an RCU grace period
//! (milliseconds to tens of milliseconds on cgroup v1), so a few keepers are parked
//! ahead in a pool, refilled in the background, and a cold start only sends the
//! message. The keeper then forks PID 1 of the new PID namespace, which builds the
//! root, pivots into it, drops to the sandbox user, installs the seccomp filter and
//! execs the runtime; a status pipe reports its errors (EOF means exec). The keeper
//! waits for PID 1 and exits the same way (same code, or same signal), so an OOM kill
//! of the runtime still reads `signal: killed`. When PID 1 dies the kernel kills
//! everything else in its namespace.

pub(crate) mod cgroup;
pub(crate) mod cpus;
pub(crate) mod egress;
pub(crate) mod mounts;
pub(crate) mod net;
pub(crate) mod seccomp;
pub(crate) mod wire;

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use parking_lot::Mutex;
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
    /// Pin environments that use up their CPU quota to as many CPUs as their quota
    /// needs, while they do (see `cpus`).
    pub pin_busy: bool,
    /// Where the cgroup file systems are mounted.
    pub cgroup_root: PathBuf,
    /// User and group the function runs as (`nobody` by default).
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Keepers parked ahead (with their cgroup and network namespace), so a cold
    /// start does not wait for them. 0 makes every start pay for its own. The pool
    /// belongs to the Tokio runtime current when it is filled.
    pub pool: usize,
    /// How environments of egress functions reach the outside.
    pub egress: egress::EgressOptions,
}

impl Default for LinuxOptions {
    fn default() -> Self {
        Self {
            seccomp: true,
            pids_max: 1024,
            cpu_quota: true,
            pin_busy: true,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            uid: 65534,
            gid: 65534,
            pool: 0,
            egress: egress::EgressOptions::default(),
        }
    }
}

/// The isolating driver. See the module documentation.
#[derive(Debug)]
pub struct LinuxDriver {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    opts: LinuxOptions,
    layout: cgroup::Layout,
    bpf: Option<Arc<BpfProgram>>,
    /// Parked keepers with a network namespace, ready to take.
    pool: Mutex<Vec<Parked>>,
    /// Keepers whose namespace [`Driver::new_netns`] handed out, waiting for `start`.
    reserved: Mutex<Vec<Parked>>,
    /// Refills under way.
    filling: std::sync::atomic::AtomicUsize,
    /// The thread that forks keepers when the pool is on (see [`Shared::park`]).
    parker: Mutex<Option<std::sync::mpsc::Sender<ParkRequest>>>,
    /// How egress environments get out (set once, after the probe).
    egress: std::sync::OnceLock<EgressState>,
    /// Pins busy environments (with `pin_busy` and the CPU quota, on two CPUs or more).
    placer: Option<Arc<cpus::Placer>>,
}

/// What [`Network::Egress`] means on this server.
#[derive(Debug)]
enum EgressState {
    Routed(egress::Egress),
    Host,
    /// Routed was asked for and could not be set up: egress functions fail to start.
    Unavailable(String),
}

/// Asks the parker thread for one more pooled keeper.
struct ParkRequest {
    netns: Option<Arc<NetNs>>,
    host: bool,
}

/// Whether the linux driver can run here: creates it (which starts a probe
/// environment) and says why not when it cannot.
pub fn probe(opts: LinuxOptions) -> Result<LinuxDriver, String> {
    LinuxDriver::new(opts)
}

/// A keeper parked in its cgroup and namespaces, waiting for its launch message.
#[derive(Debug)]
struct Parked {
    child: Option<tokio::process::Child>,
    cgroup: Option<cgroup::Cgroup>,
    netns: Option<Arc<NetNs>>,
    listeners: Option<NetListeners>,
    /// The routed-egress slot of its namespace.
    lease: Option<egress::Lease>,
    /// Where the launch message goes.
    launch: std::fs::File,
    /// EOF once PID 1 exec'd; an errno (4 bytes) if it could not.
    status: std::fs::File,
}

impl Drop for Parked {
    fn drop(&mut self) {
        // An unused keeper: it reads EOF and exits; kill it to be sure.
        if let Some(c) = &mut self.child {
            let _ = c.start_kill();
        }
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
            cg.remove();
        }
    }
}

impl LinuxDriver {
    /// Detects the cgroup hierarchy, compiles the seccomp filter and starts one
    /// throw-away environment (`/bin/sh -c 'exit 0'`) to prove namespaces, mounts and
    /// cgroups work here. Needs a Tokio runtime (environments are Tokio children).
    pub fn new(opts: LinuxOptions) -> Result<Self, String> {
        if !cfg!(target_os = "linux") {
            return Err("the linux driver needs Linux".into());
        }
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
        let placer = (opts.pin_busy && opts.cpu_quota)
            .then(cpus::Placer::start)
            .flatten();
        let driver = Self {
            inner: Arc::new(Shared {
                placer,
                opts,
                layout,
                bpf,
                pool: Mutex::new(Vec::new()),
                reserved: Mutex::new(Vec::new()),
                filling: Default::default(),
                parker: Mutex::new(None),
                egress: std::sync::OnceLock::new(),
            }),
        };
        let dir = std::env::temp_dir().join(format!("stratus-probe-{}", std::process::id()));
        let mut spec = LaunchSpec::new(
            "/bin/sh".into(),
            vec!["-c".into(), "exit 0".into()],
            "/".into(),
            dir.clone(),
        );
        spec.memory_mb = 64;
        let probe = driver.start(&spec).map_err(|e| e.to_string());
        let status = probe.and_then(|mut p| {
            let status = wait_briefly(&mut p);
            p.killer().kill_tree();
            status
        });
        let _ = std::fs::remove_dir(&dir);
        let status = status?;
        if !status.success() {
            return Err(format!("an isolated probe process failed ({status})"));
        }
        let egress = match driver.inner.opts.egress.mode {
            egress::EgressMode::Host => EgressState::Host,
            egress::EgressMode::Routed => {
                match egress::Egress::setup(driver.inner.opts.egress.pool) {
                    Ok(e) => EgressState::Routed(e),
                    Err(why) => EgressState::Unavailable(why),
                }
            }
        };
        let _ = driver.inner.egress.set(egress);
        if driver.inner.opts.pool > 0 {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                Shared::start_parker(&driver.inner, handle)?;
            }
        }
        driver.inner.refill();
        Ok(driver)
    }

    /// The cgroup version in use.
    pub fn cgroup_version(&self) -> cgroup::CgroupVersion {
        self.inner.layout.version
    }

    /// Warnings about egress for the start-up output: why routed egress is
    /// unavailable, that egress means the host's network, or what its set-up found
    /// (a resolver environments cannot reach).
    pub fn egress_warnings(&self) -> Vec<String> {
        match self.inner.egress.get() {
            Some(EgressState::Routed(e)) => e.warnings().to_vec(),
            Some(EgressState::Host) => vec![
                "--egress-mode host: functions with egress share the host's network                  namespace and reach every port on the host, its loopback included"
                    .into(),
            ],
            Some(EgressState::Unavailable(why)) => vec![format!(
                "routed egress is unavailable ({why}): functions with egress will fail to                  start (--egress-mode host gives them the host's network instead)"
            )],
            None => Vec::new(),
        }
    }

    /// Environments pinned now because they use up their CPU quota (see `cpus`).
    pub fn pinned_environments(&self) -> usize {
        self.inner.placer.as_ref().map_or(0, |p| p.pinned())
    }

    /// Routed egress slots in use (tests, health).
    pub fn egress_in_use(&self) -> Option<u32> {
        match self.inner.egress.get() {
            Some(EgressState::Routed(e)) => Some(e.in_use()),
            _ => None,
        }
    }
}

/// Waits (synchronously, up to 10 s) for a probe process to exit.
fn wait_briefly(p: &mut Process) -> Result<std::process::ExitStatus, String> {
    for _ in 0..10_000 {
        match p.child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the probe process did not exit within 10 s".into())
}

impl Shared {
    /// Keepers die with the *thread* that forked them (`PR_SET_PDEATHSIG`), and Tokio
    /// retires idle blocking threads: with the pool on, one long-lived thread forks
    /// every keeper.
    fn start_parker(me: &Arc<Self>, handle: tokio::runtime::Handle) -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel::<ParkRequest>();
        let weak = Arc::downgrade(me);
        std::thread::Builder::new()
            .name("stratus-parker".into())
            .spawn(move || {
                let _rt = handle.enter();
                for req in rx {
                    let Some(me) = weak.upgrade() else { return };
                    if me.parker.lock().is_none() {
                        // Shut down: no more keepers.
                        return;
                    }
                    match me.park_here(req.netns, req.host) {
                        Ok(p) => me.pool.lock().push(p),
                        Err(e) => tracing::warn!("cannot park an environment keeper: {e}"),
                    }
                    me.filling.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
            .map_err(|e| format!("cannot start the parker thread: {e}"))?;
        *me.parker.lock() = Some(tx);
        Ok(())
    }

    /// A new keeper, now, forked from this thread (the pool is empty, or this start
    /// needs a keeper of its own): a long-lived Tokio worker in the server.
    fn park(&self, netns: Option<Arc<NetNs>>, host: bool) -> Result<Parked, SandboxError> {
        self.park_here(netns, host)
    }

    /// Parks a keeper from this thread: a fresh cgroup, network namespace (unless
    /// `host`), pipes.
    fn park_here(&self, netns: Option<Arc<NetNs>>, host: bool) -> Result<Parked, SandboxError> {
        let (netns, listeners) = match (netns, host) {
            (_, true) => (None, None),
            (Some(ns), false) => (Some(ns), None),
            (None, false) => {
                let (ns, l) = net::create().map_err(SandboxError::Network)?;
                (Some(Arc::new(ns)), Some(l))
            }
        };
        let cg = self.layout.create(
            cgroup::Limits {
                memory_mb: 128,
                pids: self.opts.pids_max,
            },
            None,
        )?;
        let pipe_err = |source| SandboxError::Spawn {
            program: "the environment keeper".into(),
            source,
        };
        let (launch_rx, launch_tx) = sys::pipe().map_err(pipe_err)?;
        let (status_rx, status_tx) = sys::pipe().map_err(pipe_err)?;
        let cstr = |b: &[u8]| {
            CString::new(b).map_err(|_| SandboxError::Spec("a path contains a NUL byte".into()))
        };
        let setup = ChildSetup {
            procs: cg
                .procs_files()
                .iter()
                .map(|p| cstr(p.as_os_str().as_bytes()))
                .collect::<Result<_, _>>()?,
            netns: netns.clone(),
            launch: launch_rx,
            status: status_tx,
            buf: Vec::with_capacity(wire::MAX_BYTES),
            uid: self.opts.uid,
            gid: self.opts.gid,
            bpf: self.bpf.clone(),
        };
        // The program is never exec'd by std: the keeper parks and PID 1 execs what
        // the launch message says.
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        sys::park(&mut cmd, setup);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                cg.kill_all();
                cg.remove();
                return Err(pipe_err(e));
            }
        };
        Ok(Parked {
            child: Some(child),
            cgroup: Some(cg),
            netns,
            listeners,
            lease: None,
            launch: std::fs::File::from(launch_tx),
            status: std::fs::File::from(status_rx),
        })
    }

    /// Tops the pool up to its size in the background.
    fn refill(&self) {
        use std::sync::atomic::Ordering;
        let Some(parker) = self.parker.lock().clone() else {
            return;
        };
        let have = self.pool.lock().len() + self.filling.load(Ordering::SeqCst);
        for _ in have..self.opts.pool {
            self.filling.fetch_add(1, Ordering::SeqCst);
            let req = ParkRequest {
                netns: None,
                host: false,
            };
            if parker.send(req).is_err() {
                self.filling.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// A keeper for `spec`: the one whose namespace `new_netns` handed out, a pooled
    /// one, or a new one.
    fn take(&self, spec: &LaunchSpec) -> Result<Parked, SandboxError> {
        let host = match (spec.network, &spec.netns) {
            (Network::Isolated, _) | (Network::Egress, Some(_)) => false,
            (Network::Egress, None) => match self.egress.get() {
                Some(EgressState::Host) => true,
                Some(EgressState::Unavailable(why)) => {
                    return Err(egress::EgressError::Unavailable(why.clone()).into())
                }
                // Routed: a namespace of its own with the route out.
                _ => return self.reserve(Network::Egress),
            },
        };
        // Reservations whose namespace nobody holds any more were abandoned.
        self.reserved
            .lock()
            .retain(|p| p.netns.as_ref().is_some_and(|ns| Arc::strong_count(ns) > 1));
        if let (false, Some(ns)) = (host, &spec.netns) {
            let mut reserved = self.reserved.lock();
            if let Some(i) = reserved
                .iter()
                .position(|p| p.netns.as_ref().is_some_and(|n| Arc::ptr_eq(n, ns)))
            {
                return Ok(reserved.swap_remove(i));
            }
            drop(reserved);
            return self.park(Some(ns.clone()), false);
        }
        if !host {
            let pooled = self.pool.lock().pop();
            if let Some(p) = pooled {
                self.refill();
                return Ok(p);
            }
            self.refill();
        }
        self.park(None, host)
    }

    /// A keeper with a namespace (pooled or new) for an environment with `network`:
    /// for routed egress, its veth pair made and leased. Not yet reserved.
    fn reserve(&self, network: Network) -> Result<Parked, SandboxError> {
        let pooled = self.pool.lock().pop();
        let mut parked = match pooled {
            Some(p) => p,
            None => self.park(None, false)?,
        };
        self.refill();
        if let (Network::Egress, Some(EgressState::Routed(e)), Some(ns)) =
            (network, self.egress.get(), &parked.netns)
        {
            // On an error the keeper (and its namespace) is dropped with `parked`.
            parked.lease = Some(e.attach(ns)?);
        }
        Ok(parked)
    }

    /// Sends the launch message to `parked` and waits for PID 1 to exec.
    fn launch(&self, mut parked: Parked, spec: &LaunchSpec) -> Result<Process, SandboxError> {
        let program_name = spec.program.display().to_string();
        let fail = |source: std::io::Error| SandboxError::Spawn {
            program: program_name.clone(),
            source,
        };
        std::fs::create_dir_all(&spec.tmp_dir).map_err(|source| SandboxError::CreateTmpDir {
            path: spec.tmp_dir.clone(),
            source,
        })?;
        let message = self.message(spec)?;
        let lease = parked.lease.take();
        let (Some(mut child), Some(mut cgroup)) = (parked.child.take(), parked.cgroup.take())
        else {
            return Err(fail(std::io::Error::other("the keeper was already used")));
        };
        // Dropping the emptied shell closes its pipes, so put everything back on error.
        cgroup.set_limits(
            cgroup::Limits {
                memory_mb: spec.memory_mb.max(16),
                pids: self.opts.pids_max,
            },
            self.opts
                .cpu_quota
                .then(|| cgroup::CpuLimit::for_memory(spec.memory_mb)),
            self.placer.clone(),
        )?;
        let len = (message.len() as u32).to_le_bytes();
        // The status pipe carries `k` (the keeper forked PID 1) and, if PID 1 could
        // not exec, `e` and an errno; then EOF. Nothing at all: the keeper died.
        let mut status = [0u8; 6];
        let sent = parked
            .launch
            .write_all(&len)
            .and_then(|_| parked.launch.write_all(&message))
            .and_then(|_| read_full(&mut parked.status, &mut status));
        let outcome = match sent {
            Ok(n) => match status[..n].iter().position(|b| *b == b'e') {
                Some(i) if n >= i + 5 => {
                    let mut e = [0u8; 4];
                    e.copy_from_slice(&status[i + 1..i + 5]);
                    Err(std::io::Error::from_raw_os_error(i32::from_le_bytes(e)))
                }
                Some(_) => Err(std::io::Error::other("a truncated status from the keeper")),
                None if status[..n].contains(&b'k') => Ok(()),
                None => Err(std::io::Error::other(
                    "the environment keeper died before the launch",
                )),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let _ = child.start_kill();
            cgroup.kill_all();
            cgroup.remove();
            let _ = std::fs::remove_dir(&spec.tmp_dir);
            return Err(fail(e));
        }
        drop(parked);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let pid = child.id().unwrap_or(0);
        let killer = Arc::new(TreeKiller {
            pid,
            tmp_dir: spec.tmp_dir.clone(),
            cgroup: Some(cgroup),
            egress: Mutex::new(lease),
        });
        let capture = |fd: std::io::Result<OwnedFd>| fd.and_then(OutputPipe::new);
        let stdout = stdout.map(|s| capture(s.into_owned_fd()));
        let stderr = stderr.map(|s| capture(s.into_owned_fd()));
        let (stdout, stderr) = match (stdout.transpose(), stderr.transpose()) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(source), _) | (_, Err(source)) => {
                killer.kill_tree();
                return Err(SandboxError::Capture {
                    program: program_name,
                    source,
                });
            }
        };
        Ok(Process {
            child,
            killer,
            stdout,
            stderr,
        })
    }

    /// The launch message for `spec`: host paths rewritten through its mounts.
    fn message(&self, spec: &LaunchSpec) -> Result<Vec<u8>, SandboxError> {
        let plan = mounts::plan(&spec.tmp_dir, &spec.mounts, spec.tmp_mb, &mounts::host_kind)?;
        let nul =
            |_| SandboxError::Spec("a NUL byte in the program, arguments or environment".into());
        let program = mounts::remap(&spec.program, &spec.mounts);
        let program_c = CString::new(program.as_os_str().as_bytes()).map_err(nul)?;
        let cwd = mounts::remap(&spec.cwd, &spec.mounts);
        let cwd_c = CString::new(cwd.as_os_str().as_bytes()).map_err(nul)?;
        let mut args = vec![program_c.clone()];
        for a in &spec.args {
            let a = if a.as_bytes().starts_with(b"/") {
                mounts::remap(Path::new(a), &spec.mounts).into_os_string()
            } else {
                a.clone()
            };
            args.push(CString::new(a.as_bytes()).map_err(nul)?);
        }
        let mut env = Vec::with_capacity(spec.env.len() + 1);
        for (k, v) in &spec.env {
            if k == "TMPDIR" {
                continue;
            }
            let v = mounts::remap_value(v, &spec.mounts);
            env.push(CString::new(format!("{k}={v}")).map_err(nul)?);
        }
        env.push(c"TMPDIR=/tmp".to_owned());
        wire::encode(&program_c, &cwd_c, &args, &env, &plan).map_err(SandboxError::Spec)
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What the keeper needs, all built before `fork`.
struct ChildSetup {
    procs: Vec<CString>,
    netns: Option<Arc<NetNs>>,
    launch: OwnedFd,
    status: OwnedFd,
    /// Capacity for the launch message (written in the child's copy only).
    buf: Vec<u8>,
    uid: u32,
    gid: u32,
    bpf: Option<Arc<BpfProgram>>,
}

impl Driver for LinuxDriver {
    fn start(&self, spec: &LaunchSpec) -> Result<Process, SandboxError> {
        let parked = self.inner.take(spec)?;
        self.inner.launch(parked, spec)
    }

    fn new_netns(
        &self,
        network: Network,
    ) -> Result<Option<(Arc<NetNs>, NetListeners)>, SandboxError> {
        if network == Network::Egress {
            match self.inner.egress.get() {
                Some(EgressState::Host) => return Ok(None),
                Some(EgressState::Unavailable(why)) => {
                    return Err(egress::EgressError::Unavailable(why.clone()).into())
                }
                _ => {}
            }
        }
        let mut parked = self.inner.reserve(network)?;
        let (Some(ns), Some(listeners)) = (parked.netns.clone(), parked.listeners.take()) else {
            return Err(SandboxError::Network(std::io::Error::other(
                "a parked keeper has no network namespace",
            )));
        };
        self.inner.reserved.lock().push(parked);
        Ok(Some((ns, listeners)))
    }

    fn shutdown(&self) {
        self.inner.parker.lock().take();
        if let Some(EgressState::Routed(e)) = self.inner.egress.get() {
            e.teardown();
        }
        let mut parked: Vec<Parked> = self.inner.pool.lock().drain(..).collect();
        parked.extend(self.inner.reserved.lock().drain(..));
        // Kill the unused keepers and wait (bounded) until they are gone: a keeper
        // killed mid-setup (mounts) can take a moment to exit, and none may
        // outlive the server.
        for p in &mut parked {
            if let Some(c) = &mut p.child {
                let _ = c.start_kill();
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for p in &mut parked {
            if let Some(c) = &mut p.child {
                while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
        drop(parked);
    }

    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            driver: "linux",
            isolated: true,
            cgroup: Some(self.inner.layout.version.name()),
            seccomp: self.inner.bpf.is_some(),
            egress: match self.inner.egress.get() {
                Some(EgressState::Routed(e)) => format!("routed {}", e.pool()),
                Some(EgressState::Unavailable(why)) => format!("unavailable: {why}"),
                Some(EgressState::Host) | None => "host".into(),
            },
            egress_in_use: self.egress_in_use(),
            pinned: Some(u32::try_from(self.pinned_environments()).unwrap_or(u32::MAX)),
        }
    }
}

#[allow(unsafe_code)]
mod sys {
    use std::ffi::CStr;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::wire::{self, Reader};
    use super::ChildSetup;

    pub(super) fn euid() -> u32 {
        // SAFETY: geteuid(2) cannot fail and has no preconditions.
        unsafe { libc::geteuid() }
    }

    /// A close-on-exec pipe: (read end, write end).
    pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    }

    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn errno() -> i32 {
        // SAFETY: reading the calling thread's errno.
        unsafe { *libc::__errno_location() }
    }

    /// Writes our pid to a `cgroup.procs` file without allocating.
    fn join_cgroup(file: &CStr) -> io::Result<()> {
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

    /// Closes every descriptor from 3 up except `keep` (sorted, at most two).
    fn close_all_but(a: i32, b: i32) {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let close = |from: i32, to: i32| {
            if from <= to {
                // SAFETY: close_range(2) on our own descriptor table.
                unsafe { libc::syscall(libc::SYS_close_range, from as u32, to as u32, 0u32) };
            }
        };
        close(3, lo - 1);
        close(lo + 1, hi - 1);
        close(hi + 1, i32::MAX);
    }

    /// Reads exactly `len` bytes to `ptr`; false at EOF or on an error.
    fn read_exact(fd: i32, ptr: *mut u8, len: usize) -> bool {
        let mut done = 0;
        while done < len {
            // SAFETY: `ptr..ptr+len` is memory we own (a stack array or the reserved
            // capacity of the message buffer).
            let n = unsafe { libc::read(fd, ptr.add(done).cast(), len - done) };
            if n > 0 {
                done += n as usize;
            } else if n == 0 || errno() != libc::EINTR {
                return false;
            }
        }
        true
    }

    /// Reports `e` on the status pipe (`e` and the errno) and exits.
    fn report(status: i32, e: &io::Error) -> ! {
        let code = e.raw_os_error().unwrap_or(libc::EIO).to_le_bytes();
        let msg = [b'e', code[0], code[1], code[2], code[3]];
        // SAFETY: write/_exit with a stack buffer.
        unsafe {
            libc::write(status, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    }

    /// The keeper: closes everything, waits for PID 1 of the new namespace and exits
    /// the same way.
    fn keep(child: libc::pid_t) -> ! {
        // SAFETY: only system calls on our own process; we are a freshly forked
        // child and share no memory with anything else.
        unsafe {
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            let mut status = 0;
            loop {
                let r = libc::waitpid(child, &mut status, 0);
                if r == child {
                    break;
                }
                if r < 0 && errno() != libc::EINTR {
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

    /// PID 1: builds the root from the message, drops privileges, installs the
    /// filter and execs. Returns only on error.
    fn pid1(msg: &[u8], setup: &ChildSetup) -> io::Error {
        let fail = || io::Error::from_raw_os_error(libc::EINVAL);
        let mut r = Reader::new(msg);
        let (Some(program), Some(cwd), Some(argc)) = (r.cstr(), r.cstr(), r.u32()) else {
            return fail();
        };
        let mut argv = [std::ptr::null::<libc::c_char>(); wire::MAX_ARGS + 2];
        for slot in argv
            .iter_mut()
            .take((argc as usize).min(wire::MAX_ARGS + 1))
        {
            match r.cstr() {
                Some(a) => *slot = a.as_ptr(),
                None => return fail(),
            }
        }
        let Some(envc) = r.u32() else { return fail() };
        let mut envp = [std::ptr::null::<libc::c_char>(); wire::MAX_ENV + 2];
        for slot in envp.iter_mut().take((envc as usize).min(wire::MAX_ENV + 1)) {
            match r.cstr() {
                Some(e) => *slot = e.as_ptr(),
                None => return fail(),
            }
        }
        let host = b"sandbox";
        // SAFETY: system calls on NUL-terminated strings borrowed from the message
        // and on our own process; nothing allocates.
        unsafe {
            if let Err(e) = check(libc::sethostname(host.as_ptr().cast(), host.len())) {
                return e;
            }
            if let Err(e) = super::mounts::exec::build_root(&mut r) {
                return e;
            }
            for rc in [
                libc::chdir(cwd.as_ptr()),
                libc::setgroups(0, std::ptr::null()),
                libc::setgid(setup.gid),
                libc::setuid(setup.uid),
                // Changing the user cleared the parent-death signal: set it again, so
                // PID 1 (and with it the whole namespace) dies with its keeper, and
                // the keeper dies with the server.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL),
            ] {
                if let Err(e) = check(rc) {
                    return e;
                }
            }
            if let Some(bpf) = &setup.bpf {
                if seccompiler::apply_filter(bpf).is_err() {
                    return io::Error::from_raw_os_error(libc::EPERM);
                }
            }
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        io::Error::last_os_error()
    }

    /// Makes `cmd` a parked keeper. See the module documentation.
    pub(super) fn park(cmd: &mut std::process::Command, mut setup: ChildSetup) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child and makes only
        // async-signal-safe system calls on data built before the fork (`setup` is
        // moved in; the message is read into capacity reserved beforehand).
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
                let launch = setup.launch.as_raw_fd();
                let status = setup.status.as_raw_fd();
                // Also closes the spawner's exec-status pipe: `spawn` returns now,
                // and this keeper parks holding nothing of the server's.
                close_all_but(launch, status);
                let mut len = [0u8; 4];
                if !read_exact(launch, len.as_mut_ptr(), 4) {
                    libc::_exit(0);
                }
                let len = u32::from_le_bytes(len) as usize;
                let cap = setup.buf.capacity();
                let buf = setup.buf.as_mut_ptr();
                if len > cap || !read_exact(launch, buf, len) {
                    report(status, &io::Error::from_raw_os_error(libc::EINVAL));
                }
                libc::close(launch);
                let pid = libc::fork();
                if pid < 0 {
                    report(status, &io::Error::last_os_error());
                }
                if pid > 0 {
                    libc::write(status, b"k".as_ptr().cast(), 1);
                    keep(pid);
                }
                // PID 1 of the new namespace from here on.
                if let Err(e) = check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL)) {
                    report(status, &e);
                }
                let msg = std::slice::from_raw_parts(buf, len);
                let e = pid1(msg, &setup);
                report(status, &e)
            });
        }
    }
}
