//! The linux driver for real (needs root, as CI has): what a process sees and may do
//! from inside an environment. Each test starts real processes through
//! [`LinuxDriver`] and reads what they print.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use stratus_sandbox::{
    Driver, EgressMode, EgressOptions, LaunchSpec, LinuxDriver, LinuxOptions, Mount, Network,
    Process,
};

fn driver() -> Option<&'static LinuxDriver> {
    static D: OnceLock<Option<LinuxDriver>> = OnceLock::new();
    D.get_or_init(|| {
        // SAFETY-free check through the file system: root owns /proc/self/status's Uid.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        if uid_line.split_whitespace().nth(2) != Some("0") {
            eprintln!("not root: the linux driver tests are skipped");
            return None;
        }
        Some(LinuxDriver::new(LinuxOptions::default()).expect("linux driver available as root"))
    })
    .as_ref()
}

struct Fixture {
    _dir: tempfile::TempDir,
    code: PathBuf,
    data: PathBuf,
    tmp_root: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("data/code/abc");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("handler.txt"), "code here").unwrap();
    let data = dir.path().join("data");
    std::fs::write(data.join("state.db"), "secret state").unwrap();
    let tmp_root = data.join("tmp");
    std::fs::create_dir_all(&tmp_root).unwrap();
    Fixture {
        code,
        data,
        tmp_root,
        _dir: dir,
    }
}

fn spec(f: &Fixture, program: &str, args: &[&str]) -> LaunchSpec {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = LaunchSpec::new(
        program.into(),
        args.iter().map(Into::into).collect(),
        f.code.clone(),
        f.tmp_root.join(format!("env-{n}")),
    );
    s.mounts = vec![Mount {
        host: f.code.clone(),
        target: "/var/task".into(),
        read_only: true,
    }];
    s.env = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("TASK".into(), f.code.display().to_string()),
    ];
    s
}

async fn run(
    d: &LinuxDriver,
    s: &LaunchSpec,
) -> (String, String, std::process::ExitStatus, Process) {
    let mut p = d.start(s).unwrap();
    let mut out = p.stdout.take().unwrap();
    let mut err = p.stderr.take().unwrap();
    let (o, e) = tokio::join!(read_all(&mut out), read_all(&mut err));
    let status = p.wait().await.unwrap();
    (o, e, status, p)
}

async fn read_all(pipe: &mut stratus_sandbox::OutputPipe) -> String {
    let mut v = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = pipe.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        v.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&v).to_string()
}

async fn sh(f: &Fixture, script: &str) -> (String, String, std::process::ExitStatus) {
    let d = driver().unwrap();
    let s = spec(f, "/bin/sh", &["-c", script]);
    let (o, e, st, p) = run(d, &s).await;
    p.killer().kill_tree();
    (o, e, st)
}

#[tokio::test]
async fn code_is_read_only_at_var_task_and_paths_are_remapped() {
    if driver().is_none() {
        return;
    }
    let f = fixture();
    let (out, err, st) = sh(
        &f,
        "pwd; echo $TASK; cat /var/task/handler.txt; echo; touch /var/task/x 2>/dev/null && echo WROTE || echo ro; echo $TMPDIR; id -u",
    )
    .await;
    assert!(st.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["/var/task", "/var/task", "code here", "ro", "/tmp", "65534"],
        "{err}"
    );
}

#[tokio::test]
async fn host_files_are_invisible() {
    if driver().is_none() {
        return;
    }
    let f = fixture();
    let script = format!(
        "for p in {} {} /work /root /home /srv /var/lib; do test -e $p && echo SEEN $p; done; ls /; echo done",
        f.data.display(),
        f.data.join("state.db").display()
    );
    let (out, err, st) = sh(&f, &script).await;
    assert!(st.success(), "{err}");
    assert!(!out.contains("SEEN"), "{out}");
    let top: Vec<&str> = out.lines().filter(|l| *l != "done").collect();
    for entry in &top {
        assert!(
            [
                "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp",
                "usr", "var"
            ]
            .contains(entry),
            "unexpected /{entry} in {top:?}"
        );
    }
    // The root and system dirs are read-only; /tmp is not.
    let (out, _, _) = sh(
        &f,
        "touch /x 2>/dev/null && echo root-rw; touch /usr/x 2>/dev/null && echo usr-rw; touch /tmp/x && echo tmp-rw",
    )
    .await;
    assert_eq!(out.trim(), "tmp-rw");
}

#[tokio::test]
async fn tmp_is_a_private_tmpfs_of_the_given_size() {
    let Some(d) = driver() else { return };
    let f = fixture();
    let mut s = spec(
        &f,
        "/bin/sh",
        &["-c", "grep ' /tmp ' /proc/mounts; df -k /tmp | tail -1"],
    );
    s.tmp_mb = 600;
    let (out, err, st, p) = run(d, &s).await;
    p.killer().kill_tree();
    assert!(st.success(), "{err}");
    assert!(out.starts_with("tmpfs /tmp tmpfs"), "{out}");
    let kb: u64 = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(kb, 600 * 1024, "{out}");
    // Filling it past its size fails inside, and nothing lands on the host.
    let mut s = spec(
        &f,
        "/bin/sh",
        &[
            "-c",
            "dd if=/dev/zero of=/tmp/big bs=1M count=20 2>&1; echo rc=$?",
        ],
    );
    s.tmp_mb = 8;
    let (out, _, _, p) = run(d, &s).await;
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert_eq!(
        std::fs::read_dir(&s.tmp_dir).unwrap().count(),
        0,
        "the host sees an empty mount point"
    );
    p.killer().kill_tree();
    assert!(!s.tmp_dir.exists());
}

#[tokio::test]
async fn own_pid_namespace_hostname_and_only_loopback() {
    if driver().is_none() {
        return;
    }
    let f = fixture();
    let (out, err, st) = sh(
        &f,
        "echo $$; hostname; ls /proc | grep -c '^[0-9]'; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; grep ' lo' /proc/net/route | wc -l",
    )
    .await;
    assert!(st.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the runtime is PID 1: {out}");
    assert_eq!(lines[1], "sandbox");
    let procs: u32 = lines[2].parse().unwrap();
    assert!(procs <= 4, "only our own processes are visible: {out}");
    assert_eq!(lines[3], "lo", "only lo: {out}");
}

#[tokio::test]
async fn host_ports_are_unreachable_and_host_mode_reaches_them() {
    let Some(d) = driver() else { return };
    let f = fixture();
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let script = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('CONNECTED')\nexcept OSError as e:\n    print('refused', e.errno)\n"
    );
    let s = spec(&f, "/usr/bin/python3", &["-c", &script]);
    let (out, err, _, p) = run(d, &s).await;
    p.killer().kill_tree();
    assert!(out.starts_with("refused"), "{out} {err}");
    // `--egress-mode host`: egress shares the host's network, its loopback included.
    let host_mode = LinuxDriver::new(LinuxOptions {
        egress: EgressOptions {
            mode: EgressMode::Host,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let mut s = spec(&f, "/usr/bin/python3", &["-c", &script]);
    s.network = Network::Egress;
    assert!(host_mode.new_netns(Network::Egress).unwrap().is_none());
    let (out, err, _, p) = run(&host_mode, &s).await;
    p.killer().kill_tree();
    assert_eq!(out.trim(), "CONNECTED", "{err}");
    host_mode.shutdown();
}

/// Routed egress at the driver level: the environment has `lo` and `eth0` with the
/// pool's address and a default route; the host's loopback is its own (refused),
/// the host-side veth address is dropped by the firewall (a timeout, where without
/// the rule a closed port would refuse at once); the slot comes back when the
/// environment is killed, and the table goes at shutdown.
#[tokio::test]
async fn routed_egress_has_a_route_out_and_not_to_the_host() {
    if driver().is_none() {
        return;
    }
    let d = LinuxDriver::new(LinuxOptions {
        egress: EgressOptions {
            mode: EgressMode::Routed,
            pool: "100.127.252.0/24".parse().unwrap(),
        },
        ..Default::default()
    })
    .unwrap();
    let info = d.info();
    assert_eq!(
        info.egress,
        "routed 100.127.252.0/24",
        "{:?}",
        d.egress_warnings()
    );
    let f = fixture();
    let host = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = host.local_addr().unwrap().port();
    const SCRIPT: &str = r#"
import socket, sys
port = int(sys.argv[1])
def probe(ip):
    try:
        socket.create_connection((ip, port), timeout=1.5).close()
        return 'connected'
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return 'errno %d' % e.errno
routes = open('/proc/net/route').read().splitlines()[1:]
print([l.split()[:3] for l in routes if l.split()[1] == '00000000'])
print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))
print(probe('127.0.0.1'))
print(probe('100.127.252.1'))
"#;
    let port = port.to_string();
    let (ns, _listeners) = d.new_netns(Network::Egress).unwrap().unwrap();
    assert_eq!(d.egress_in_use(), Some(1));
    let mut s = spec(&f, "/usr/bin/python3", &["-c", SCRIPT, &port]);
    s.network = Network::Egress;
    s.netns = Some(ns);
    let (out, err, _, p) = run(&d, &s).await;
    let lines: Vec<&str> = out.lines().collect();
    // Default route (destination 0) through eth0, gateway 100.127.252.1 (little-endian hex).
    assert_eq!(
        lines.first().copied(),
        Some("[['eth0', '00000000', '01FC7F64']]"),
        "{out} {err}"
    );
    assert_eq!(lines[1], "['eth0', 'lo']", "{out}");
    assert_eq!(
        lines[2], "errno 111",
        "the host's loopback is not the environment's: {out}"
    );
    assert_eq!(lines[3], "timeout", "the host is firewalled off: {out}");
    p.killer().kill_tree();
    assert_eq!(d.egress_in_use(), Some(0), "the slot is free again");
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&links.stdout).to_string();
    assert!(
        !table.contains("stx647ffc00@"),
        "the veth pair is gone: {table}"
    );
    d.shutdown();
}

#[tokio::test]
async fn listeners_made_in_the_netns_are_reachable_inside() {
    let Some(d) = driver() else { return };
    let f = fixture();
    let (ns, listeners) = d.new_netns(Network::Isolated).unwrap().unwrap();
    let mut s = spec(
        &f,
        "/usr/bin/python3",
        &["-c", "import socket\ns = socket.create_connection(('127.0.0.1', 9001), timeout=2)\ns.sendall(b'hi')\nprint('sent')"],
    );
    s.netns = Some(ns);
    let accept = std::thread::spawn(move || {
        listeners.runtime.set_nonblocking(false).unwrap();
        let (mut c, _) = listeners.runtime.accept().unwrap();
        let mut buf = [0u8; 2];
        std::io::Read::read_exact(&mut c, &mut buf).unwrap();
        buf
    });
    let (out, err, st, p) = run(d, &s).await;
    p.killer().kill_tree();
    assert!(st.success(), "{out} {err}");
    assert_eq!(&accept.join().unwrap(), b"hi");
}

#[tokio::test]
async fn memory_limit_kills_and_reports_oom() {
    let Some(d) = driver() else { return };
    let f = fixture();
    let mut s = spec(
        &f,
        "/usr/bin/python3",
        &["-c", "import time\nx = []\nfor i in range(400):\n    x.append(bytearray(1024 * 1024))\nprint('survived')"],
    );
    s.memory_mb = 64;
    let (out, _, st, p) = run(d, &s).await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "{out} {st:?}");
    assert!(p.killer().oom_killed());
    let peak = p.killer().max_memory_bytes();
    assert!(peak > 32 << 20 && peak <= 64 << 20, "peak {peak}");
    p.killer().kill_tree();
    // A process under its limit is not reported as OOM.
    let (out, _, st, p) = run(d, &spec(&f, "/bin/sh", &["-c", "echo fine"])).await;
    assert!(st.success() && out == "fine\n");
    assert!(!p.killer().oom_killed());
    assert!(p.killer().max_memory_bytes() > 0);
    p.killer().kill_tree();
}

#[tokio::test]
async fn fork_bomb_stays_inside_the_pids_limit() {
    if driver().is_none() {
        return;
    }
    let d = LinuxDriver::new(LinuxOptions {
        pids_max: 32,
        ..Default::default()
    })
    .unwrap();
    let f = fixture();
    let bomb = "import os, time\nforked, failed = 0, 0\nfor i in range(100):\n    try:\n        pid = os.fork()\n    except OSError:\n        failed += 1\n        continue\n    if pid == 0:\n        time.sleep(10)\n        os._exit(0)\n    forked += 1\nprint(forked, failed, len([p for p in os.listdir('/proc') if p.isdigit()]))\n";
    let s = spec(&f, "/usr/bin/python3", &["-c", bomb]);
    let (out, err, st, p) = run(&d, &s).await;
    let n: Vec<u32> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!(st.success(), "{out} {err}");
    assert!(n[0] > 20 && n[0] < 32, "forked {out}");
    assert_eq!(n[0] + n[1], 100, "the rest failed: {out}");
    assert!(n[2] <= 32, "{out}");
    p.killer().kill_tree();
}

#[tokio::test]
async fn seccomp_denies_mount_ptrace_and_namespaces() {
    if driver().is_none() {
        return;
    }
    let f = fixture();
    let script = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nfor name, call in [('ptrace', lambda: libc.ptrace(0, 0, 0, 0)), ('unshare', lambda: libc.unshare(0x10000000)), ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))]:\n    rc = call()\n    print(name, rc, ctypes.get_errno())\nprint([l for l in open('/proc/self/status') if l.startswith(('Seccomp:', 'NoNewPrivs:'))])\n";
    let d = driver().unwrap();
    let s = spec(&f, "/usr/bin/python3", &["-c", script]);
    let (out, err, st, p) = run(d, &s).await;
    p.killer().kill_tree();
    assert!(st.success(), "{err}");
    // ptrace(TRACEME) and unshare(CLONE_NEWUSER) are allowed to any user without the
    // filter; with it they fail with EPERM (1).
    assert!(out.contains("ptrace -1 1\n"), "{out}");
    assert!(out.contains("unshare -1 1\n"), "{out}");
    assert!(out.contains("mount -1 1\n"), "{out}");
    assert!(out.contains("Seccomp:\\t2"), "{out}");
    // Without the filter, the same ptrace succeeds: the test can fail.
    let open = LinuxDriver::new(LinuxOptions {
        seccomp: false,
        ..Default::default()
    })
    .unwrap();
    let (out, _, _, p) = run(&open, &spec(&f, "/usr/bin/python3", &["-c", script])).await;
    p.killer().kill_tree();
    assert!(out.contains("ptrace 0 0\n"), "{out}");
}

#[tokio::test]
async fn missing_program_is_a_clear_error_and_leaves_nothing() {
    let Some(d) = driver() else { return };
    let f = fixture();
    let s = spec(&f, "/var/task/nope", &[]);
    let err = d.start(&s).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!Path::new(&s.tmp_dir).join("usr").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_keepers_serve_starts_and_refill() {
    if driver().is_none() {
        return;
    }
    let d = LinuxDriver::new(LinuxOptions {
        pool: 2,
        ..Default::default()
    })
    .unwrap();
    let f = fixture();
    // More starts than the pool holds: pooled ones, then fresh ones, all isolated.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (ns, listeners) = d.new_netns(Network::Isolated).unwrap().unwrap();
        let mut s = spec(
            &f,
            "/bin/sh",
            &["-c", "echo $$; readlink /proc/self/ns/net"],
        );
        s.netns = Some(ns);
        let (out, err, st, p) = run(&d, &s).await;
        p.killer().kill_tree();
        assert!(st.success(), "{err}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("1"));
        seen.push(lines.next().unwrap().to_string());
        drop(listeners);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        4,
        "each environment had its own namespace: {seen:?}"
    );
    // The pool is topped up again in the background: keepers parked as children.
    let me = std::process::id();
    let mut parked = 0;
    for _ in 0..200 {
        parked = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(") ")
                            .map(|(_, r)| r.split_whitespace().nth(1).map(str::to_string))
                    })
                    .flatten()
                    == Some(me.to_string())
            })
            .count();
        if parked >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(parked >= 2, "{parked} keepers parked");
    // An abandoned reservation (netns taken, never started) is reclaimed.
    let (ns, _l) = d.new_netns(Network::Isolated).unwrap().unwrap();
    drop(ns);
    let (_, _, st, p) = run(&d, &spec(&f, "/bin/true", &[])).await;
    p.killer().kill_tree();
    assert!(st.success());
}

#[tokio::test]
async fn cpu_quota_holds_a_small_function_to_its_share_of_a_vcpu() {
    let Some(d) = driver() else { return };
    let f = fixture();
    // Waits for the quota to be applied, then spins for 1.5 s of wall time and says
    // how much CPU it got.
    let spin = "import time\ntime.sleep(0.3)\nt, c = time.time(), time.process_time()\nwhile time.time() - t < 1.5:\n    pass\nprint(time.process_time() - c)\n";
    let mut s = spec(&f, "/usr/bin/python3", &["-c", spin]);
    s.memory_mb = 32;
    let mut p = d.start(&s).unwrap();
    p.killer().limit_cpu();
    let mut out = p.stdout.take().unwrap();
    let text = read_all(&mut out).await;
    assert!(p.wait().await.unwrap().success(), "{text}");
    let used: f64 = text.trim().parse().unwrap();
    eprintln!("a 32 MB function spun {used} s of CPU in 1.5 s");
    // 32 MB is 1.8% of a vCPU (1 ms every 55 ms): about 0.03 s of 1.5 s. A busy
    // machine can only lower it; unlimited, it gets a core or its share of one.
    assert!(
        used < 0.08,
        "a 32 MB function spun {used} s of CPU in 1.5 s"
    );
    p.killer().kill_tree();
}

/// The CPUs each process of the tree under `root` may run on
/// (`Cpus_allowed_list` of every thread).
fn masks_under(root: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            if let Some(l) = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            {
                out.push((pid, l.trim().to_string()));
            }
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_using_up_its_cpu_quota_is_pinned_and_cannot_unpin_itself() {
    let Some(d) = driver() else { return };
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one CPU: nothing to pin");
        return;
    }
    let f = fixture();
    let all = masks_under(std::process::id())[0].1.clone();
    // Three spinning processes at one vCPU of quota; the third tries to pin itself.
    let spin = "import os, time\ntime.sleep(0.2)\nfor _ in range(2):\n    if os.fork() == 0:\n        while True: pass\ntry:\n    os.sched_setaffinity(0, {0})\n    print('setaffinity allowed', flush=True)\nexcept OSError as e:\n    print('setaffinity errno', e.errno, flush=True)\nwhile True: pass\n";
    let mut s = spec(&f, "/usr/bin/python3", &["-c", spin]);
    s.memory_mb = 1769;
    let mut busy = d.start(&s).unwrap();
    let _kill_busy = KillOnDrop(busy.killer());
    busy.killer().limit_cpu();
    let mut idle = spec(
        &f,
        "/usr/bin/python3",
        &["-c", "import time; time.sleep(60)"],
    );
    idle.memory_mb = 1769;
    let idle = d.start(&idle).unwrap();
    let _kill_idle = KillOnDrop(idle.killer());
    idle.killer().limit_cpu();

    let mut out = busy.stdout.take().unwrap();
    let mut said = String::new();
    let mut buf = [0u8; 256];
    while !said.contains('\n') {
        let n = out.read(&mut buf).await.unwrap();
        assert!(n > 0, "the spinner exited: {said}");
        said.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // seccomp: EPERM (1).
    assert_eq!(said.trim(), "setaffinity errno 1");

    // Within a few samples every thread of the spinner is on one CPU.
    let mut masks = Vec::new();
    for _ in 0..60 {
        masks = masks_under(busy.pid());
        if masks.len() >= 4 && masks.iter().all(|(_, m)| m.parse::<u32>().is_ok()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(masks.len() >= 4, "{masks:?}");
    assert!(
        masks.iter().all(|(_, m)| m.parse::<u32>().is_ok()),
        "a spinning function at one vCPU was not pinned to one CPU: {masks:?}"
    );
    assert!(d.pinned_environments() >= 1);
    assert!(d.info().pinned >= Some(1), "{:?}", d.info());
    // The idle function floats on every CPU.
    let idle_masks = masks_under(idle.pid());
    assert!(
        idle_masks.iter().all(|(_, m)| *m == all),
        "an idle function was pinned: {idle_masks:?} (all: {all})"
    );
}

/// Kills an environment when a test ends, failed assertions included.
struct KillOnDrop(stratus_sandbox::Killer);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill_tree();
    }
}

#[test]
fn an_environment_dies_with_the_thread_that_started_it() {
    // Keepers die with the thread that forked them (the server's, in a crash); the
    // environment's PID 1 runs as another user, which clears a parent-death signal
    // set before the switch, and must die with its keeper all the same.
    let started = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let d = driver()?;
        let f = fixture();
        let p = d.start(&spec(&f, "/bin/sleep", &["60"])).unwrap();
        let mut tree = Vec::new();
        for _ in 0..100 {
            tree = masks_under(p.pid());
            if tree.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::mem::forget(p);
        Some(tree)
    })
    .join()
    .unwrap();
    let Some(tree) = started else { return };
    assert!(tree.len() >= 2, "keeper and PID 1: {tree:?}");
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, r)| !r.starts_with('Z'))
        })
    };
    let mut left = Vec::new();
    for _ in 0..100 {
        left = tree.iter().map(|(p, _)| *p).filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(left.is_empty(), "still running: {left:?} of {tree:?}");
}
