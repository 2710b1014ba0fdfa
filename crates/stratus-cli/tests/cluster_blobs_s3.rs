//! `--blobs s3://bucket/prefix` end to end against a real S3-compatible server:
//! moto's standalone server (`python3 -m moto.server`, from PyPI's `moto[s3]`, which
//! scripts/test installs into target/test-deps/moto), on a free loopback port. A
//! package deployed through node 1 is stored in the bucket and run by node 2, which
//! has no copy of its own; a package altered in the bucket never runs; a wrong
//! bucket or missing credentials are start-up errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::json;

/// Where scripts/test installs moto (`pip install --target`), or `STRATUS_MOTO_DIR`.
fn moto_dir() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_MOTO_DIR") {
        return PathBuf::from(p);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/moto");
    assert!(
        dir.join("moto").is_dir(),
        "moto is not installed in {}: `python3 -m pip install --target target/test-deps/moto \
         'moto[s3]' flask flask-cors` (scripts/test does it), or set STRATUS_MOTO_DIR",
        dir.display()
    );
    dir
}

/// A moto S3 server of this test's own. It runs under `sh`, which stops it when our
/// end of its standard input closes, so it never outlives the test process.
struct Moto {
    port: u16,
    child: Child,
    stdin: Option<ChildStdin>,
    log: tempfile::NamedTempFile,
}

impl Moto {
    fn start() -> Moto {
        let log = tempfile::NamedTempFile::new().unwrap();
        let port = stratus_testkit::free_port();
        let script = "python3 -m moto.server -H 127.0.0.1 -p \"$PORT\" & p=$!\nread _ignored\nkill $p 2>/dev/null\nwait $p\n";
        let mut child = Command::new("sh")
            .args(["-c", script])
            .env("PYTHONPATH", moto_dir())
            .env("PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                "moto did not listen on {port}:\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            port,
            child,
            stdin,
            log,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `code` with boto3's S3 client `s3` on this server (as the test's
    /// credentials); returns what it printed.
    fn boto3(&self, code: &str, input: &[u8]) -> String {
        let script = format!(
            "import sys, boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='eu-west-1', \
             aws_access_key_id='AKIDSTRATUSTEST', aws_secret_access_key='stratus-test-secret')\n{code}\n",
            self.endpoint()
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .env("PYTHONPATH", moto_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create_bucket(&self, bucket: &str) {
        self.boto3(&format!("s3.create_bucket(Bucket='{bucket}', CreateBucketConfiguration={{'LocationConstraint': 'eu-west-1'}})"), b"");
    }

    /// The keys in `bucket`, one a line.
    fn keys(&self, bucket: &str) -> String {
        self.boto3(
            &format!("for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', []): print(o['Key'])"),
            b"",
        )
    }

    /// Writes `bytes` to `bucket`/`key`.
    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.boto3(
            &format!("s3.put_object(Bucket='{bucket}', Key='{key}', Body=sys.stdin.buffer.read())"),
            bytes,
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
        let _ = &self.log;
    }
}

/// The environment of a node using `moto`: endpoint, region and credentials as the
/// AWS tools read them, and the cluster's master key.
fn s3_env(moto: &Moto, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDSTRATUSTEST".into()),
        ("AWS_SECRET_ACCESS_KEY", "stratus-test-secret".into()),
        ("STRATUS_MASTER_KEY", key.to_string()),
    ]
}

async fn node(c: &Cluster, moto: &Moto, id: &str) -> Server {
    let env = s3_env(moto, &c.key);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_env(
        &c.tmp.path().join(id),
        &node_flags(&c.url, &c.blobs, id),
        &env,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packages_in_s3_deploy_through_one_node_and_run_on_another() {
    let moto = Moto::start();
    moto.create_bucket("stratus-code");
    let mut c = Cluster::new();
    c.blobs = "s3://stratus-code/cluster-a".into();
    let n1 = node(&c, &moto, "n1").await;
    let n2 = node(&c, &moto, "n2").await;

    let zip = node_zip("from s3");
    n1.create_ok("hello-s3", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    let hash = stratus_package::sha256_hex(&zip);
    // The package is in the bucket under the prefix, in the file store's layout.
    let key = format!("cluster-a/sha256/{}/{hash}", &hash[..2]);
    let listing = moto.keys("stratus-code");
    assert!(listing.lines().any(|l| l == key), "{listing}");

    // Node 2 has no copy but the bucket's (its own data dir, no shared directory):
    // it reads it when the deploy reaches it, checks it, keeps it, and runs it.
    let mut r = n2.invoke("hello-s3", "{}").await;
    let t = Instant::now();
    while r.status == 404 && t.elapsed() < Duration::from_secs(5) {
        // The deploy reaches node 2 within a second (LISTEN/NOTIFY).
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = n2.invoke("hello-s3", "{}").await;
    }
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json_body(&r)["message"], "from s3");
    assert!(c
        .tmp
        .path()
        .join("n2/blobs/sha256")
        .join(&hash[..2])
        .join(&hash)
        .is_file());

    // The package altered in the bucket: a third node, with no copy, refuses it
    // with the file store's error and never unpacks or runs it.
    let mut altered = zip.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    moto.put("stratus-code", &key, &altered);
    let n3 = node(&c, &moto, "n3").await;
    let r = n3.invoke("hello-s3", "{}").await;
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_ne!(r.status, 200, "a corrupt package ran: {body}");
    assert!(body.contains("corrupt") && body.contains(&hash), "{body}");
    assert!(body.contains("s3://stratus-code/cluster-a"), "{body}");
    assert!(
        !c.tmp.path().join("n3/code").join(&hash).exists(),
        "it was unpacked"
    );
    // The nodes with a verified copy of their own still run it.
    let r = n2.invoke("hello-s3", "{}").await;
    assert_eq!(json_body(&r)["message"], "from s3");
}

/// Starts `stratus server --blobs URL` alone (no cluster) with `env`; it must
/// refuse to start. Returns its standard error.
async fn refused(blobs: &str, env: &[(&str, String)]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("server")
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--sandbox", "process"])
            .args(["--blobs", blobs])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .env_remove("AWS_ALLOW_HTTP")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the server gave up in time")
    .unwrap();
    assert!(!out.status.success(), "started with --blobs {blobs}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_s3_settings_are_start_up_errors() {
    let moto = Moto::start();
    moto.create_bucket("present");
    let env = s3_env(&moto, &master_key());
    let without = |name: &str| -> Vec<(&str, String)> {
        env.iter().filter(|(k, _)| *k != name).cloned().collect()
    };
    let with = |name: &'static str, value: &str| -> Vec<(&str, String)> {
        let mut e = without(name);
        e.push((name, value.to_string()));
        e
    };
    for (blobs, env, says) in [
        (
            "s3://present",
            without("AWS_SECRET_ACCESS_KEY"),
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        ("s3://Not_A_Bucket", env.clone(), "not a bucket name"),
        (
            "s3://present",
            with("AWS_ENDPOINT_URL", "http://192.0.2.1:9000"),
            "plain http to an address beyond loopback",
        ),
        // The bucket does not exist: found when the node starts, not at a deploy.
        (
            "s3://absent-bucket/p",
            env.clone(),
            "cannot list bucket \"absent-bucket\"",
        ),
    ] {
        let err = refused(blobs, &env).await;
        assert!(err.contains(says), "{blobs} {env:?}: {err}");
        assert!(err.contains(blobs), "the URL is not named: {err}");
        assert!(
            !err.contains("stratus-test-secret"),
            "the secret leaked: {err}"
        );
    }
}
