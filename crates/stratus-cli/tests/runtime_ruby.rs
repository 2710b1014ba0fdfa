//! The Ruby runtimes (issue 12, parts 3 and 7), end to end through the real
//! `stratus` binary and server with the Ruby installed on the machine (Debian 12's
//! Ruby 3.1, which runs `ruby3.x` only with `--runtime-fallback nearest`): result,
//! context object, logs, function errors, init errors, timeout, crash, both handler
//! forms, a Gemfile service with a vendored gem, the refusal of an ID whose Ruby
//! is not installed, and `ruby2.7` under `--legacy-runtimes nearest`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::Path;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

/// The Ruby on PATH: its full version (`3.1.2`).
fn installed_ruby() -> String {
    let o = std::process::Command::new("ruby")
        .args(["-e", "print RUBY_VERSION"])
        .output()
        .expect("ruby is installed (scripts/test installs it with apt)");
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

/// A `rubyX.Y` ID that the installed Ruby is not.
fn other_ruby_id(installed: &str) -> &'static str {
    ["ruby3.3", "ruby3.4", "ruby3.2"]
        .into_iter()
        .find(|id| !installed.starts_with(&format!("{}.", &id["ruby".len()..])))
        .unwrap()
}

const APP_RB: &str = r#"
require 'json'
require 'logger'

$count = 0
LOGGER = Logger.new($stdout)

class AppError < StandardError; end

def handler(event:, context:)
  $count += 1
  case event['action']
  when 'error' then raise ArgumentError, "ruby says no: #{event['detail']}"
  when 'app_error' then raise AppError, 'custom failure'
  when 'sleep' then sleep(event['s'])
  when 'exit' then Process.exit!(7)
  when 'missing' then this_method_does_not_exist
  end
  puts "hello from ruby #{event.to_json}"
  puts "first line\nsecond line"
  $stderr.puts 'to stderr'
  LOGGER.info('logged at info')
  {
    invocations: $count,
    event: event,
    ruby: RUBY_VERSION,
    context: {
      function_name: context.function_name,
      function_version: context.function_version,
      invoked_function_arn: context.invoked_function_arn,
      memory_limit_in_mb: context.memory_limit_in_mb,
      aws_request_id: context.aws_request_id,
      log_group_name: context.log_group_name,
      log_stream_name: context.log_stream_name,
      deadline_ms: context.deadline_ms,
      remaining: context.get_remaining_time_in_millis,
      client_context: context.client_context,
      identity: context.identity
    },
    env: { handler: ENV['_HANDLER'], exec_env: ENV['AWS_EXECUTION_ENV'], task_root: ENV['LAMBDA_TASK_ROOT'] }
  }
end
"#;

const CLASS_RB: &str = r#"
module Foo
  class Bar
    def self.call(event:, context:)
      { form: 'class', name: event['name'], request: context.aws_request_id }
    end
  end
end
"#;

fn ruby_zip() -> Vec<u8> {
    raw_zip(&[
        ("app.rb", APP_RB.as_bytes()),
        ("lib/handler.rb", CLASS_RB.as_bytes()),
        (
            "broken.rb",
            b"require 'module_that_does_not_exist'\ndef handler(event:, context:) = 1\n",
        ),
        (
            "syntax.rb",
            b"def handler(event:, context:\n  1 +\nend end\n",
        ),
        ("raises.rb", b"raise 'failed while loading'\n"),
    ])
}

/// The server's stderr log (where the runtime's own warnings and fallbacks go).
fn server_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data.server.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_handlers_run_with_context_logs_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let installed = installed_ruby();
    let id = "ruby3.3";
    let s = Server::start(&dir.path().join("data"), &["--runtime-fallback", "nearest"]).await;
    let h: Value = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["runtimes"][id]["version"], installed, "{h}");
    let exact = installed.starts_with("3.3.");
    assert_eq!(h["runtimes"][id]["exact"], exact, "{h}");
    if !exact {
        assert!(
            server_log(dir.path()).contains(&format!("WARNING: {id} runs on Ruby {installed}")),
            "{}",
            server_log(dir.path())
        );
    }
    s.create_ok(
        "rb",
        id,
        "app.handler",
        &ruby_zip(),
        json!({"MemorySize": 256, "Timeout": 2}),
    )
    .await;

    // Cold: result, context object, environment.
    let cc =
        base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"v"},"env":{"e":"1"}}"#);
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/rb/invocations",
            &[("x-amz-log-type", "Tail"), ("x-amz-client-context", &cc)],
            r#"{"name":"a"}"#.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let tail = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(r.header("x-amz-log-result").unwrap())
            .unwrap(),
    )
    .unwrap();
    let v = json_body(&r);
    let request_id = r.header("x-amzn-requestid").unwrap();
    assert_eq!(v["invocations"], 1);
    assert_eq!(v["event"], json!({"name": "a"}));
    assert_eq!(v["ruby"], installed);
    let c = &v["context"];
    assert_eq!(c["function_name"], "rb");
    assert_eq!(c["function_version"], "$LATEST");
    assert_eq!(
        c["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:rb"
    );
    // A string, as Lambda's Ruby runtime gives it.
    assert_eq!(c["memory_limit_in_mb"], "256");
    assert_eq!(c["aws_request_id"], request_id);
    assert_eq!(c["log_group_name"], "/aws/lambda/rb");
    assert!(
        c["log_stream_name"]
            .as_str()
            .unwrap()
            .contains("/[$LATEST]"),
        "{c}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let deadline = c["deadline_ms"].as_i64().unwrap();
    assert!(
        deadline > now - 2000 && deadline <= now + 2000,
        "deadline_ms is epoch ms of now + 2 s: {deadline} vs {now}"
    );
    let remaining = c["remaining"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 2000, "{remaining}");
    assert_eq!(
        c["client_context"],
        json!({"custom": {"k": "v"}, "env": {"e": "1"}})
    );
    assert!(c["identity"].is_null(), "{c}");
    assert_eq!(v["env"]["handler"], "app.handler");
    assert_eq!(v["env"]["exec_env"], format!("AWS_Lambda_{id}"));

    // Logs: START, the function's output (puts, $stderr, Logger in Lambda's
    // format), END, REPORT with Init Duration on the cold start.
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(
        lines[0],
        format!("START RequestId: {request_id} Version: $LATEST"),
        "{tail}"
    );
    assert!(lines.contains(&r#"hello from ruby {"name":"a"}"#), "{tail}");
    assert!(lines.contains(&"to stderr"), "{tail}");
    // One `puts`, one log event, as Lambda's Ruby runtime makes it.
    assert!(lines.contains(&"first line\rsecond line"), "{tail}");
    let logger_line = lines
        .iter()
        .find(|l| l.ends_with(&format!(" INFO {request_id} -- : logged at info")))
        .unwrap_or_else(|| panic!("no Logger line: {tail}"));
    // `I, [2026-01-01T00:00:00.123456 #42]  INFO <id> -- : logged at info`
    assert!(logger_line.starts_with("I, ["), "{logger_line}");
    let stamp = &logger_line[4..30];
    assert_eq!(&stamp[10..11], "T", "{logger_line}");
    assert_eq!(&stamp[19..20], ".", "{logger_line}");
    assert!(logger_line[30..].starts_with(" #"), "{logger_line}");
    assert!(logger_line.contains("]  INFO "), "{logger_line}");
    let end = lines
        .iter()
        .position(|l| *l == format!("END RequestId: {request_id}"))
        .expect("END line");
    assert!(
        lines[end + 1].starts_with(&format!("REPORT RequestId: {request_id}\tDuration: ")),
        "{tail}"
    );
    assert!(lines[end + 1].contains("\tInit Duration: "), "{tail}");

    // Warm: the same process, no Init Duration.
    let (r, tail) = s.invoke_tail("rb", r#"{"name":"b"}"#).await;
    assert_eq!(json_body(&r)["invocations"], 2);
    assert!(!tail.contains("Init Duration"), "{tail}");

    // A raised error: Lambda's Ruby error shape, logged, the environment kept.
    let (r, tail) = s
        .invoke_tail("rb", r#"{"action":"error","detail":"d"}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "Function<ArgumentError>", "{e}");
    assert_eq!(e["errorMessage"], "ruby says no: d");
    let trace = e["stackTrace"].as_array().unwrap();
    let line = APP_RB
        .lines()
        .position(|l| l.contains("ruby says no"))
        .unwrap()
        + 1;
    assert!(
        trace[0]
            .as_str()
            .unwrap()
            .contains(&format!("app.rb:{line}:in")),
        "the handler's own frame first: {e}"
    );
    assert!(
        !trace
            .iter()
            .any(|f| f.as_str().unwrap().contains("bootstrap.rb")),
        "no runtime frames: {e}"
    );
    assert!(tail.contains("Error raised from handler method"), "{tail}");
    assert!(
        tail.contains(r#""errorType": "Function<ArgumentError>""#),
        "{tail}"
    );
    let e = json_body(&s.invoke("rb", r#"{"action":"app_error"}"#).await);
    assert_eq!(e["errorType"], "Function<AppError>");
    assert_eq!(e["errorMessage"], "custom failure");
    assert_eq!(
        json_body(&s.invoke("rb", "{}").await)["invocations"],
        5,
        "the environment survived the errors"
    );

    // A NameError in the handler: Lambda's critical exception, logged as such.
    let (r, tail) = s.invoke_tail("rb", r#"{"action":"missing"}"#).await;
    assert!(tail.contains("Critical exception from handler"), "{tail}");
    let e = json_body(&r);
    assert_eq!(e["errorType"], "Function<NameError>", "{e}");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .contains("this_method_does_not_exist"),
        "{e}"
    );
    // As Lambda's, the runtime exits after a critical exception: the next call gets
    // a fresh environment (runtime_exit.rs tests this path further).
    let r = s.invoke("rb", "{}").await;
    assert_eq!(
        json_body(&r)["invocations"],
        1,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Timeout: Lambda's message; the environment is not reused.
    let (r, tail) = s.invoke_tail("rb", r#"{"action":"sleep","s":5}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let id_t = r.header("x-amzn-requestid").unwrap().to_string();
    let msg = json_body(&r)["errorMessage"].as_str().unwrap().to_string();
    assert!(
        msg.ends_with(&format!(" {id_t} Task timed out after 2.00 seconds")),
        "{msg}"
    );
    assert!(tail.contains("Status: timeout"), "{tail}");
    assert_eq!(json_body(&s.invoke("rb", "{}").await)["invocations"], 1);

    // A crash: Runtime.ExitError with the exit status.
    let e = json_body(&s.invoke("rb", r#"{"action":"exit"}"#).await);
    assert_eq!(e["errorType"], "Runtime.ExitError", "{e}");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 7"),
        "{e}"
    );

    // The other handler form: a class method, in a sub-directory.
    s.create_ok(
        "rb-class",
        id,
        "lib/handler.Foo::Bar.call",
        &ruby_zip(),
        json!({}),
    )
    .await;
    let r = s.invoke("rb-class", r#"{"name":"z"}"#).await;
    let v = json_body(&r);
    assert_eq!(
        v,
        json!({"form": "class", "name": "z", "request": r.header("x-amzn-requestid").unwrap()})
    );

    // Lambda's JSON log format, and the level, for Loggers on stdout.
    s.create_ok(
        "rb-json",
        id,
        "app.handler",
        &ruby_zip(),
        json!({"Environment": {"Variables": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}}}),
    )
    .await;
    let (r, tail) = s.invoke_tail("rb-json", "{}").await;
    let request_id = r.header("x-amzn-requestid").unwrap();
    let logged: Value = tail
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.is_object())
        })
        .unwrap_or_else(|| panic!("no JSON log line: {tail}"));
    assert_eq!(logged["level"], "INFO", "{logged}");
    assert_eq!(logged["message"], "logged at info", "{logged}");
    assert_eq!(logged["requestId"], request_id, "{logged}");
    assert!(
        logged["timestamp"].as_str().unwrap().ends_with('Z'),
        "{logged}"
    );
    s.create_ok(
        "rb-level",
        id,
        "app.handler",
        &ruby_zip(),
        json!({"Environment": {"Variables": {"AWS_LAMBDA_LOG_LEVEL": "WARN"}}}),
    )
    .await;
    let (_, tail) = s.invoke_tail("rb-level", "{}").await;
    assert!(tail.contains("hello from ruby"), "{tail}");
    assert!(!tail.contains("logged at info"), "{tail}");

    // A method that is not there: NoMethodError when called, as in Lambda.
    s.create_ok("rb-nomethod", id, "app.nope", &ruby_zip(), json!({}))
        .await;
    let e = json_body(&s.invoke("rb-nomethod", "{}").await);
    assert_eq!(e["errorType"], "Function<NoMethodError>", "{e}");
    assert!(e["errorMessage"].as_str().unwrap().contains("nope"), "{e}");
    // A class that is not there.
    s.create_ok(
        "rb-noclass",
        id,
        "app.Nope::Here.call",
        &ruby_zip(),
        json!({}),
    )
    .await;
    let e = json_body(&s.invoke("rb-noclass", "{}").await);
    assert_eq!(e["errorType"], "Function<NameError>", "{e}");

    // Init errors: Lambda's `Init<ErrorClass>`.
    let init_error = |name: &'static str, handler: &'static str| {
        let s = &s;
        async move {
            s.create_ok(name, id, handler, &ruby_zip(), json!({})).await;
            let r = s.invoke(name, "{}").await;
            assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
            json_body(&r)
        }
    };
    let e = init_error("rb-nofile", "nothere.handler").await;
    assert_eq!(e["errorType"], "Init<LoadError>", "{e}");
    assert_eq!(e["errorMessage"], "cannot load such file -- nothere", "{e}");
    let mut logged = Vec::new();
    for _ in 0..100 {
        logged = s.logs("rb-nofile").await;
        if logged.iter().any(|l| l.contains("Init<LoadError>")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("Init error when loading handler nothere.handler\r{")),
        "{logged:#?}"
    );
    let e = init_error("rb-broken", "broken.handler").await;
    assert_eq!(e["errorType"], "Init<LoadError>", "{e}");
    assert_eq!(
        e["errorMessage"],
        "cannot load such file -- module_that_does_not_exist"
    );
    assert!(
        e["stackTrace"][0]
            .as_str()
            .unwrap()
            .contains("broken.rb:1:in"),
        "{e}"
    );
    let e = init_error("rb-syntax", "syntax.handler").await;
    assert_eq!(e["errorType"], "Init<SyntaxError>", "{e}");
    assert!(
        e["errorMessage"].as_str().unwrap().contains("syntax.rb:"),
        "{e}"
    );
    let e = init_error("rb-raises", "raises.handler").await;
    assert_eq!(e["errorType"], "Init<RuntimeError>", "{e}");
    assert_eq!(e["errorMessage"], "failed while loading");
    let e = init_error("rb-malformed", "app").await;
    assert_eq!(e["errorType"], "Init<ArgumentError>", "{e}");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .contains("must be of form FILENAME.METHOD or FILENAME.CLASS.METHOD"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ruby_id_whose_version_is_not_installed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let installed = installed_ruby();
    let id = other_ruby_id(&installed);
    let want = &id["ruby".len()..];
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = ruby_zip();
    let r = s.create("rb", id, "app.handler", &zip, json!({})).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidParameterValueException")
    );
    let msg = json_body(&r)["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains(&format!("the runtime {id} needs Ruby {want}")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("Ruby installed: {installed} at ")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("--runtime {id}=/path/to/ruby"))
            && msg.contains("--runtime-fallback nearest"),
        "{msg}"
    );

    // `stratus deploy` is refused the same way, naming the function.
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        format!("service: old\nprovider:\n  name: aws\n  runtime: {id}\nfunctions:\n  f:\n    handler: app.handler\n"),
    )
    .unwrap();
    std::fs::write(svc.join("app.rb"), APP_RB).unwrap();
    let o = stratus_cmd(&svc, &format!("http://{}", s.addr), &["deploy"]).await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(&format!("function f: the runtime {id} needs Ruby {want}")),
        "{text}"
    );

    // `invoke local` embeds a server: refused the same way, and run on the installed
    // Ruby when STRATUS_RUNTIME_FALLBACK says so, as for `stratus server`.
    let local = |fallback: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
        cmd.args(["invoke", "local", "-f", "f", "-d", r#"{"name":"local"}"#])
            .current_dir(&svc)
            .env("NO_COLOR", "1")
            .env_remove("STRATUS_RUNTIME_FALLBACK");
        if let Some(v) = fallback {
            cmd.env("STRATUS_RUNTIME_FALLBACK", v);
        }
        cmd.output().unwrap()
    };
    let o = local(None);
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(&format!("the runtime {id} needs Ruby {want}")),
        "{text}"
    );
    let o = local(Some("nearest"));
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("REPORT RequestId"), "{text}");
    let o = local(Some("sometimes"));
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("STRATUS_RUNTIME_FALLBACK=sometimes: expected refuse or nearest"),
        "{text}"
    );

    // `--runtime ID=PATH` with a Ruby of another version stops the server.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data2"))
        .arg("--runtime")
        .arg(format!("{id}=ruby"))
        .output()
        .await
        .unwrap();
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "--runtime {id}=ruby: that is Ruby {installed}, not the version {id} runs"
        )),
        "{text}"
    );
}

const GREETER_GEMSPEC: &str = r#"
Gem::Specification.new do |s|
  s.name = 'greeter'
  s.version = '0.1.0'
  s.summary = 'A gem built by the Stratus tests'
  s.authors = ['Stratus']
  s.files = ['lib/greeter.rb']
  s.license = 'MIT'
end
"#;

const GEM_HANDLER: &str = r#"
require 'greeter'

def hello(event:, context:)
  {
    greeting: Greeter.hello(event['name']),
    gem_dir: Gem.loaded_specs['greeter'].full_gem_path,
    gem_path: ENV['GEM_PATH'],
    task_root: ENV['LAMBDA_TASK_ROOT']
  }
end
"#;

fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let o = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn zip_names(path: &Path) -> Vec<String> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemfile_service_is_packaged_with_its_gems() {
    let dir = tempfile::tempdir().unwrap();
    let installed = installed_ruby();
    let abi = format!("{}.0", installed.rsplit_once('.').unwrap().0);

    // A tiny real gem, built with `gem build`, in the service's vendor/cache (what
    // `bundle cache` leaves): the install needs no network.
    let gem_src = dir.path().join("greeter");
    std::fs::create_dir_all(gem_src.join("lib")).unwrap();
    std::fs::write(gem_src.join("greeter.gemspec"), GREETER_GEMSPEC).unwrap();
    std::fs::write(
        gem_src.join("lib/greeter.rb"),
        "module Greeter\n  def self.hello(name) = \"Hello, #{name}, from a vendored gem\"\nend\n",
    )
    .unwrap();
    run(&gem_src, "gem", &["build", "greeter.gemspec"], &[]);
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(svc.join("vendor/cache")).unwrap();
    std::fs::copy(
        gem_src.join("greeter-0.1.0.gem"),
        svc.join("vendor/cache/greeter-0.1.0.gem"),
    )
    .unwrap();
    std::fs::write(
        svc.join("Gemfile"),
        "source 'https://rubygems.org'\n\ngem 'greeter', '0.1.0'\n",
    )
    .unwrap();
    std::fs::write(svc.join("handler.rb"), GEM_HANDLER).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: gems\nprovider:\n  name: aws\n  runtime: ruby3.3\nfunctions:\n  hello:\n    handler: handler.hello\n",
    )
    .unwrap();

    // No Gemfile.lock: a clear error (deployment installs need one).
    let o = stratus_cmd(&svc, "http://127.0.0.1:1", &["package"]).await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("has a Gemfile but no Gemfile.lock: run `bundle lock`"),
        "{text}"
    );
    // The lock, as a user makes it (`bundle install`), installing into a scratch
    // directory rather than the machine's gems.
    run(
        &svc,
        "bundle",
        &["install", "--local"],
        &[("BUNDLE_PATH", &dir.path().join("scratch"))],
    );
    assert!(svc.join("Gemfile.lock").is_file());

    // Without Bundler: a clear error.
    let o = {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
        cmd.arg("package")
            .current_dir(&svc)
            .env("STRATUS_BUNDLE", "bundle-is-not-installed")
            .output()
            .await
            .unwrap()
    };
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(
            "has a Gemfile, but `bundle-is-not-installed` (Ruby's Bundler) was not found"
        ),
        "{text}"
    );

    let s = Server::start(&dir.path().join("data"), &["--runtime-fallback", "nearest"]).await;
    let ep = format!("http://{}", s.addr);
    let out = stratus_ok(&svc, &ep, &["deploy"]).await;
    assert!(out.contains("gems-dev-hello"), "{out}");

    // The package holds the installed gem as Bundler's deployment layout, not
    // Bundler's download cache; the project itself was left alone.
    let names = zip_names(&svc.join(".serverless/gems.zip"));
    for want in [
        "handler.rb".to_string(),
        format!("vendor/bundle/ruby/{abi}/gems/greeter-0.1.0/lib/greeter.rb"),
        format!("vendor/bundle/ruby/{abi}/specifications/greeter-0.1.0.gemspec"),
    ] {
        assert!(names.contains(&want), "{want} not in {names:#?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(&format!("vendor/bundle/ruby/{abi}/cache/"))),
        "{names:#?}"
    );
    assert!(!svc.join("vendor/bundle").exists());
    assert!(!svc.join(".bundle").exists());

    let v: Value = serde_json::from_str(
        &stratus_ok(
            &svc,
            &ep,
            &["invoke", "-f", "hello", "-d", r#"{"name":"Ruby"}"#],
        )
        .await,
    )
    .unwrap();
    assert_eq!(v["greeting"], "Hello, Ruby, from a vendored gem", "{v}");
    let task_root = v["task_root"].as_str().unwrap();
    assert_eq!(
        v["gem_dir"],
        format!("{task_root}/vendor/bundle/ruby/{abi}/gems/greeter-0.1.0"),
        "{v}"
    );
    assert!(
        v["gem_path"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{task_root}/vendor/bundle/ruby/{abi}:")),
        "the function's gems first on GEM_PATH: {v}"
    );

    // Packaging again reuses the install: the same bytes.
    let first = std::fs::read(svc.join(".serverless/gems.zip")).unwrap();
    stratus_ok(&svc, &ep, &["package"]).await;
    assert_eq!(
        first,
        std::fs::read(svc.join(".serverless/gems.zip")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby2_7_runs_as_ruby3_2_only_when_the_server_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let installed = installed_ruby();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--legacy-runtimes",
            "nearest",
            "--runtime-fallback",
            "nearest",
        ],
    )
    .await;
    let h: Value = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["runtimes"]["ruby2.7"]["runsAs"], "ruby3.2", "{h}");
    assert_eq!(h["runtimes"]["ruby2.7"]["version"], installed, "{h}");
    s.create_ok("old", "ruby2.7", "app.handler", &ruby_zip(), json!({}))
        .await;
    let r = s.invoke("old", r#"{"k":"v"}"#).await;
    let v = json_body(&r);
    assert_eq!(v["event"], json!({"k": "v"}), "{v}");
    // It keeps its own ID, as Lambda shows it.
    assert_eq!(v["env"]["exec_env"], "AWS_Lambda_ruby2.7");
}
