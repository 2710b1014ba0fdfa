//! One cgroup per environment, on cgroup v1 (one directory per controller: memory,
//! cpu, pids) or v2 (one directory): which files hold the memory limit, swap, CPU
//! quota, pids limit, peak memory and the OOM-kill count under each version, where the
//! server's own group is, and creating, killing and removing an environment's group.
//!
//! Everything is file I/O under a root directory (`/sys/fs/cgroup` for real), so
//! the logic is tested against a plain directory without root; the real thing is
//! tested in `tests/linux.rs`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::cpus::Placer;

/// Which cgroup hierarchy the machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy: a hierarchy per controller.
    V1,
    /// Unified.
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// The controllers Stratus uses, in the order files are written.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// CFS period for a full vCPU and more: 10 ms, not the kernel's default 100 ms. A
/// group may run on every core at once until its quota is spent, so with 100 ms a
/// group of spinning processes held both cores of a 2-core machine for 50 ms of each
/// period and a neighbour woken then waited milliseconds; 10 ms bounds that burst to
/// 5 ms at one vCPU and spreads a small quota evenly.
const CPU_PERIOD_US: u64 = 10_000;
/// Longest period, for the smallest functions (see [`CpuLimit::for_memory`]).
const CPU_PERIOD_MAX_US: u64 = 100_000;
/// The kernel's smallest quota.
const CPU_QUOTA_MIN_US: u64 = 1000;
/// Memory that buys one full vCPU (Lambda's documented ratio).
const MB_PER_VCPU: u64 = 1769;

/// A CPU quota per period, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit {
    /// Run time allowed per period.
    pub quota_us: u64,
    /// The period.
    pub period_us: u64,
}

impl CpuLimit {
    /// CPU in proportion to memory: 1,769 MB is one vCPU. The period is 10 ms, or
    /// longer where the quota would fall under the kernel's 1 ms floor (below
    /// 177 MB: 128 MB gets 1 ms every 13.8 ms), so the ratio holds down to 18 MB.
    pub fn for_memory(memory_mb: u32) -> Self {
        let mb = u64::from(memory_mb).max(1);
        let period = (CPU_QUOTA_MIN_US * MB_PER_VCPU)
            .div_ceil(mb)
            .clamp(CPU_PERIOD_US, CPU_PERIOD_MAX_US);
        Self {
            quota_us: (period * mb / MB_PER_VCPU).max(CPU_QUOTA_MIN_US),
            period_us: period,
        }
    }
}

/// Where Stratus's cgroups live: one base directory per controller (v1) or one (v2),
/// each `<mount>/<the server's own group>/stratus`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) version: CgroupVersion,
    /// v1: (controller, base dir) for memory, cpu, pids; v2: ("", base dir).
    pub(crate) bases: Vec<(&'static str, PathBuf)>,
}

/// Numbers groups uniquely within the process (several drivers may share a base).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The limits of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) memory_mb: u32,
    pub(crate) pids: u32,
}

/// The server's group of `controller` from `/proc/self/cgroup` text (v1 lines are
/// `id:controller,list:/path`; v2 is `0::/path`, asked for with controller "").
pub(crate) fn own_group(proc_cgroup: &str, controller: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let list = parts.next()?;
        let path = parts.next()?;
        let hit = if controller.is_empty() {
            list.is_empty()
        } else {
            list.split(',').any(|c| c == controller)
        };
        hit.then(|| path.to_string())
    })
}

/// The files written when an environment's group is created: (controller, file,
/// value, required). Optional files (swap accounting) may be absent.
pub(crate) fn setup_files(
    version: CgroupVersion,
    limits: Limits,
) -> Vec<(&'static str, &'static str, String, bool)> {
    let bytes = u64::from(limits.memory_mb) * 1024 * 1024;
    match version {
        CgroupVersion::V1 => vec![
            ("memory", "memory.limit_in_bytes", bytes.to_string(), true),
            // memory+swap = memory: no swap. Absent when swap accounting is off.
            (
                "memory",
                "memory.memsw.limit_in_bytes",
                bytes.to_string(),
                false,
            ),
            ("memory", "memory.swappiness", "0".into(), false),
            ("pids", "pids.max", limits.pids.to_string(), true),
        ],
        CgroupVersion::V2 => vec![
            ("", "memory.max", bytes.to_string(), true),
            ("", "memory.swap.max", "0".into(), false),
            ("", "pids.max", limits.pids.to_string(), true),
        ],
    }
}

/// The CPU period and quota files and their values, in the order written.
pub(crate) fn cpu_files(
    version: CgroupVersion,
    cpu: CpuLimit,
) -> Vec<(&'static str, &'static str, String)> {
    match version {
        CgroupVersion::V1 => vec![
            ("cpu", "cpu.cfs_period_us", cpu.period_us.to_string()),
            ("cpu", "cpu.cfs_quota_us", cpu.quota_us.to_string()),
        ],
        CgroupVersion::V2 => vec![("", "cpu.max", format!("{} {}", cpu.quota_us, cpu.period_us))],
    }
}

/// Reads `key N` from a flat-keyed cgroup file (`memory.events`, `memory.oom_control`).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Layout {
    /// Finds the hierarchy under `root` (`/sys/fs/cgroup`) and the server's own group
    /// in `proc_cgroup`, and creates the `stratus` base groups. v2 needs the memory,
    /// cpu and pids controllers available; v1 needs their three hierarchies.
    pub(crate) fn detect(root: &Path, proc_cgroup: &str) -> io::Result<Self> {
        let v2_controllers = std::fs::read_to_string(root.join("cgroup.controllers"));
        let layout = if let Ok(list) = v2_controllers {
            let has = |c: &str| list.split_whitespace().any(|x| x == c);
            if !(has("memory") && has("pids") && has("cpu")) {
                return Err(io::Error::other(format!(
                    "cgroup v2 at {} lacks the memory, cpu or pids controller ({})",
                    root.display(),
                    list.trim()
                )));
            }
            let own = own_group(proc_cgroup, "").unwrap_or_else(|| "/".into());
            let base = root.join(own.trim_start_matches('/')).join("stratus");
            Self::prepare_v2(&root.join(own.trim_start_matches('/')), &base)?;
            Self {
                version: CgroupVersion::V2,
                bases: vec![("", base)],
            }
        } else {
            let mut bases = Vec::new();
            for c in V1_CONTROLLERS {
                let mount = root.join(c);
                if !mount.join("cgroup.procs").exists() {
                    return Err(io::Error::other(format!(
                        "no cgroup v1 {c} hierarchy at {} and no cgroup v2 at {}",
                        mount.display(),
                        root.display()
                    )));
                }
                let own = own_group(proc_cgroup, c).unwrap_or_else(|| "/".into());
                let base = mount.join(own.trim_start_matches('/')).join("stratus");
                std::fs::create_dir_all(&base)?;
                bases.push((c, base));
            }
            Self {
                version: CgroupVersion::V1,
                bases,
            }
        };
        layout.remove_stale();
        Ok(layout)
    }

    /// v2 only lets a group with no processes of its own delegate controllers: when
    /// the server's group has processes, the server moves into a `server` leaf first.
    fn prepare_v2(own: &Path, base: &Path) -> io::Result<()> {
        let enable =
            |dir: &Path| std::fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu +pids");
        if enable(own).is_err() {
            let leaf = own.join("stratus-server");
            std::fs::create_dir_all(&leaf)?;
            std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())?;
            enable(own)?;
        }
        std::fs::create_dir_all(base)?;
        enable(base)
    }

    /// Groups left by servers that died (named `<pid>-<n>`, the pid gone): removed
    /// when empty.
    fn remove_stale(&self) {
        for (_, base) in &self.bases {
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some((pid, _)) = name.split_once('-') else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
    }

    /// Creates a new environment's group with its limits.
    pub(crate) fn create(
        &self,
        limits: Limits,
        cpu: Option<CpuLimit>,
    ) -> Result<Cgroup, crate::SandboxError> {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{id}", std::process::id());
        let dirs: Vec<(&'static str, PathBuf)> = self
            .bases
            .iter()
            .map(|(c, b)| (*c, b.join(&name)))
            .collect();
        let cg = Cgroup {
            version: self.version,
            dirs,
            cpu,
            id,
            placer: None,
        };
        let fail = |path: PathBuf, source: io::Error| crate::SandboxError::Cgroup { path, source };
        for (_, dir) in &cg.dirs {
            if let Err(e) = std::fs::create_dir(dir) {
                cg.remove();
                return Err(fail(dir.clone(), e));
            }
        }
        for (controller, file, value, required) in setup_files(self.version, limits) {
            let path = cg.dir(controller).join(file);
            match std::fs::write(&path, value) {
                Ok(()) => {}
                Err(e) if !required && e.kind() == io::ErrorKind::NotFound => {}
                Err(_) if !required => {}
                Err(e) => {
                    cg.remove();
                    return Err(fail(path, e));
                }
            }
        }
        Ok(cg)
    }
}

/// One environment's group (a directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub(crate) struct Cgroup {
    version: CgroupVersion,
    dirs: Vec<(&'static str, PathBuf)>,
    cpu: Option<CpuLimit>,
    /// Unique within the process (the number in its name).
    id: u64,
    /// Pins the group while it uses up its quota (see `cpus`), once the quota is on.
    placer: Option<Arc<Placer>>,
}

impl Cgroup {
    fn dir(&self, controller: &str) -> &Path {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller || c.is_empty())
            .or(self.dirs.first())
            .map(|(_, d)| d.as_path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// Sets the limits of the environment this group is handed to (a parked group
    /// was made with defaults).
    pub(crate) fn set_limits(
        &mut self,
        limits: Limits,
        cpu: Option<CpuLimit>,
        placer: Option<Arc<Placer>>,
    ) -> Result<(), crate::SandboxError> {
        self.cpu = cpu;
        self.placer = placer;
        let files = setup_files(self.version, limits);
        // v1 wants memory <= memory+swap at every step: raising needs memsw first,
        // lowering needs memory first; a first pass that may fail, then the real one.
        for (controller, file, value, _) in &files {
            let _ = std::fs::write(self.dir(controller).join(file), value);
        }
        for (controller, file, value, required) in files {
            let path = self.dir(controller).join(file);
            match std::fs::write(&path, value) {
                Ok(()) => {}
                Err(_) if !required => {}
                Err(source) => return Err(crate::SandboxError::Cgroup { path, source }),
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes its pid to, to join the group.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// Applies the CPU quota, if one was asked for, and has the placer watch the
    /// group from now on.
    pub(crate) fn limit_cpu(&self) {
        let Some(cpu) = self.cpu else { return };
        for (controller, file, value) in cpu_files(self.version, cpu) {
            if let Err(e) = std::fs::write(self.dir(controller).join(file), value) {
                tracing::warn!(
                    "cannot set the CPU quota of {}: {e}",
                    self.dir(controller).display()
                );
                return;
            }
        }
        if let Some(placer) = &self.placer {
            let dir = self.dir("cpu");
            let tasks = match self.version {
                CgroupVersion::V1 => dir.join("tasks"),
                CgroupVersion::V2 => dir.join("cgroup.threads"),
            };
            placer.watch(self.id, dir, tasks, cpu);
        }
    }

    /// Peak memory in bytes (`memory.max_usage_in_bytes` / `memory.peak`).
    pub(crate) fn peak_memory(&self) -> Option<u64> {
        let files: &[&str] = match self.version {
            CgroupVersion::V1 => &["memory.max_usage_in_bytes"],
            CgroupVersion::V2 => &["memory.peak", "memory.current"],
        };
        files.iter().find_map(|f| {
            std::fs::read_to_string(self.dir("memory").join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Whether the OOM killer killed a process in this group.
    pub(crate) fn oom_killed(&self) -> bool {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        std::fs::read_to_string(self.dir("memory").join(file))
            .ok()
            .and_then(|t| keyed_value(&t, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// SIGKILLs every process in the group.
    pub(crate) fn kill_all(&self) {
        if self.version == CgroupVersion::V2
            && std::fs::write(self.dir("").join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for (_, dir) in &self.dirs {
            let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                continue;
            };
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                crate::sys::kill_pid(pid);
            }
        }
    }

    /// Removes the group's directories. A group still holding dying processes is
    /// retried in the background for a few seconds.
    pub(crate) fn remove(&self) {
        if let Some(placer) = &self.placer {
            placer.forget(self.id);
        }
        let mut busy = Vec::new();
        for (_, dir) in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => busy.push(dir.clone()),
            }
        }
        if busy.is_empty() {
            return;
        }
        let version = self.version;
        let _ = std::thread::Builder::new()
            .name("cgroup-remove".into())
            .spawn(move || {
                for _ in 0..500 {
                    busy.retain(|d| {
                        if version == CgroupVersion::V1 {
                            if let Ok(p) = std::fs::read_to_string(d.join("cgroup.procs")) {
                                for pid in p.split_whitespace().filter_map(|p| p.parse().ok()) {
                                    crate::sys::kill_pid(pid);
                                }
                            }
                        }
                        std::fs::remove_dir(d).is_err() && d.exists()
                    });
                    if busy.is_empty() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                for d in busy {
                    tracing::warn!("cgroup {} is still busy; left behind", d.display());
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_V1: &str =
        "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/abc\n1:cpu,cpuacct:/c\n0::/\n";

    #[test]
    fn own_group_reads_v1_and_v2_lines() {
        assert_eq!(
            own_group(PROC_V1, "memory").as_deref(),
            Some("/process_api/abc")
        );
        assert_eq!(own_group(PROC_V1, "cpu").as_deref(), Some("/c"));
        assert_eq!(own_group(PROC_V1, "pids").as_deref(), Some("/a"));
        assert_eq!(own_group(PROC_V1, "").as_deref(), Some("/"));
        assert_eq!(
            own_group("0::/user.slice/x\n", "").as_deref(),
            Some("/user.slice/x")
        );
        assert_eq!(own_group("0::/x\n", "memory"), None);
    }

    #[test]
    fn cpu_is_proportional_to_memory() {
        let limit = |mb| {
            let l = CpuLimit::for_memory(mb);
            (l.quota_us, l.period_us)
        };
        assert_eq!(limit(1769), (10_000, 10_000));
        assert_eq!(limit(3538), (20_000, 10_000));
        assert_eq!(limit(10240), (57_885, 10_000));
        // Under 177 MB the period grows so the quota stays at the 1 ms floor.
        assert_eq!(limit(177), (1000, 10_000));
        assert_eq!(limit(128), (1000, 13_821));
        assert_eq!(limit(18), (1000, 98_278));
        assert_eq!(limit(1), (1000, 100_000), "the kernel floor");
        for mb in [128, 256, 512, 1024, 1769, 3008, 10240] {
            let (q, p) = limit(mb);
            let ratio = q as f64 / p as f64 * 1769.0 / f64::from(mb);
            assert!((ratio - 1.0).abs() < 0.001, "{mb} MB: {q}/{p}");
        }
        assert_eq!(
            cpu_files(CgroupVersion::V2, CpuLimit::for_memory(1769)),
            vec![("", "cpu.max", "10000 10000".into())]
        );
        assert_eq!(
            cpu_files(CgroupVersion::V1, CpuLimit::for_memory(884)),
            vec![
                ("cpu", "cpu.cfs_period_us", "10000".into()),
                ("cpu", "cpu.cfs_quota_us", "4997".into())
            ]
        );
    }

    #[test]
    fn setup_files_per_version() {
        let l = Limits {
            memory_mb: 256,
            pids: 1024,
        };
        let v1 = setup_files(CgroupVersion::V1, l);
        assert!(v1.contains(&("memory", "memory.limit_in_bytes", "268435456".into(), true)));
        assert!(v1.contains(&(
            "memory",
            "memory.memsw.limit_in_bytes",
            "268435456".into(),
            false
        )));
        assert!(v1.contains(&("pids", "pids.max", "1024".into(), true)));
        let v2 = setup_files(CgroupVersion::V2, l);
        assert!(v2.contains(&("", "memory.max", "268435456".into(), true)));
        assert!(v2.contains(&("", "memory.swap.max", "0".into(), false)));
        assert!(v2.contains(&("", "pids.max", "1024".into(), true)));
    }

    #[test]
    fn keyed_values() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed_value(v1, "oom_kill"), Some(2));
        assert_eq!(keyed_value(v1, "oom_kill_disable"), Some(0));
        let v2 = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(0));
        assert_eq!(keyed_value(v2, "missing"), None);
    }

    /// A v1 tree as a plain directory: the mounts exist, the kernel's files do not
    /// (writes create them), which is enough to check which files get which values.
    #[test]
    fn v1_layout_and_group_in_a_plain_directory() {
        let root = tempfile::tempdir().unwrap();
        for c in V1_CONTROLLERS {
            std::fs::create_dir_all(root.path().join(c)).unwrap();
            std::fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let layout = Layout::detect(root.path(), PROC_V1).unwrap();
        assert_eq!(layout.version, CgroupVersion::V1);
        let mem_base = root.path().join("memory/process_api/abc/stratus");
        assert!(mem_base.is_dir());
        let cg = layout
            .create(
                Limits {
                    memory_mb: 128,
                    pids: 64,
                },
                Some(CpuLimit::for_memory(128)),
            )
            .unwrap();
        let mem = cg.dir("memory").to_path_buf();
        assert!(mem.starts_with(&mem_base));
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "134217728");
        assert_eq!(read(cg.dir("pids").join("pids.max")), "64");
        assert!(cg.dir("cpu").starts_with(root.path().join("cpu/c/stratus")));
        cg.limit_cpu();
        assert_eq!(read(cg.dir("cpu").join("cpu.cfs_quota_us")), "1000");
        assert_eq!(read(cg.dir("cpu").join("cpu.cfs_period_us")), "13821");
        std::fs::write(mem.join("memory.max_usage_in_bytes"), "123456\n").unwrap();
        assert_eq!(cg.peak_memory(), Some(123456));
        assert!(!cg.oom_killed());
        std::fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
        assert_eq!(cg.procs_files().len(), 3);
    }

    #[test]
    fn v2_needs_its_controllers() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpuset io\n").unwrap();
        let err = Layout::detect(root.path(), "0::/\n").unwrap_err();
        assert!(err.to_string().contains("lacks the memory"), "{err}");
    }

    #[test]
    fn v2_group_in_a_plain_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpu memory pids io\n",
        )
        .unwrap();
        let layout = Layout::detect(root.path(), "0::/svc\n").unwrap();
        assert_eq!(layout.version, CgroupVersion::V2);
        let base = root.path().join("svc/stratus");
        assert_eq!(
            std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu +pids"
        );
        let cg = layout
            .create(
                Limits {
                    memory_mb: 1769,
                    pids: 10,
                },
                Some(CpuLimit::for_memory(1769)),
            )
            .unwrap();
        let d = cg.dir("").to_path_buf();
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
            "1854930944"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("memory.swap.max")).unwrap(),
            "0"
        );
        cg.limit_cpu();
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            "10000 10000"
        );
        std::fs::write(d.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        assert!(cg.oom_killed());
        std::fs::write(d.join("memory.peak"), "42").unwrap();
        assert_eq!(cg.peak_memory(), Some(42));
    }
}
