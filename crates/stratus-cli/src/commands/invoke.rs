//! `invoke` (a deployed function through the Invoke API) and `invoke local` (the same
//! function, packaged and run by an in-process server: same bootstraps, same Runtime
//! API, no daemon needed). Both take the event from `--data`/`--path`/stdin (`--raw`
//! keeps it a string) and a client context from `--context`/`--contextPath`, which
//! the function sees as `context.clientContext`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{server_error, unreachable};
use crate::client::{Api, Reply};
use crate::project::{self, Project};
use crate::ui::{self, Exit};
use crate::Global;

/// The event: `--data`, `--path`, or standard input.
#[derive(Debug, Clone, Args)]
pub(crate) struct EventArgs {
    /// The function (its key under `functions:`).
    #[arg(long, short = 'f')]
    function: String,
    /// The event, as JSON (or any text, sent as a JSON string).
    #[arg(long, short = 'd', conflicts_with = "path")]
    data: Option<String>,
    /// A file holding the event (JSON).
    #[arg(long, short = 'p')]
    path: Option<PathBuf>,
    /// Send the data (and the context) as a JSON string even when it parses as JSON.
    #[arg(long)]
    raw: bool,
    /// Client context, as JSON (or any text, sent as a JSON string); the function
    /// sees it as `context.clientContext`.
    #[arg(long)]
    context: Option<String>,
    /// A file holding the client context (JSON); `--context` wins when both are given.
    #[arg(long = "contextPath", short = 'x')]
    context_path: Option<PathBuf>,
}

/// `stratus invoke` options.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct InvokeArgs {
    #[command(subcommand)]
    local: Option<Local>,
    #[command(flatten)]
    event: Option<EventArgs>,
    /// RequestResponse (default), Event or DryRun.
    #[arg(long, short = 't', default_value = "RequestResponse")]
    r#type: String,
    /// Print the tail of the invocation's log.
    #[arg(long, short = 'l')]
    log: bool,
    /// Version or alias to invoke.
    #[arg(long, short = 'q')]
    qualifier: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
enum Local {
    /// Run the function locally through the real runtime bootstrap and Runtime API.
    Local {
        #[command(flatten)]
        event: EventArgs,
        /// Extra environment variables, KEY=VALUE (repeatable).
        #[arg(long, short = 'e')]
        env: Vec<String>,
        /// No effect on Stratus (the function runs in its runtime's bootstrap, as on
        /// the server; not in Docker).
        #[arg(long)]
        docker: bool,
        /// No effect on Stratus (no Docker is used).
        #[arg(long = "docker-arg", allow_hyphen_values = true)]
        docker_arg: Option<String>,
    },
}

/// Reads the event from `--data`, `--path` or standard input (when piped).
fn event_payload(e: &EventArgs, dir: &std::path::Path) -> anyhow::Result<String> {
    let raw = if let Some(d) = &e.data {
        d.clone()
    } else if let Some(p) = &e.path {
        let path = if p.is_absolute() {
            p.clone()
        } else {
            dir.join(p)
        };
        std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the event file {}", path.display()))?
    } else if !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the event from standard input")?;
        s
    } else {
        String::new()
    };
    if raw.trim().is_empty() {
        return Ok("{}".into());
    }
    let json_file = e.data.is_none()
        && e.path
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|x| x == "json"));
    if e.raw && !json_file {
        return Ok(Value::String(raw).to_string());
    }
    if serde_json::from_str::<Value>(&raw).is_ok() {
        return Ok(raw);
    }
    if e.data.is_none() && e.path.is_some() {
        bail!("the event file is not valid JSON (use --raw to send it as a string)");
    }
    Ok(Value::String(raw).to_string())
}

/// The `X-Amz-Client-Context` header for `--context` / `--contextPath`: base64 of the
/// context as JSON (text that is not JSON, or anything with `--raw`, becomes a JSON
/// string, as the Serverless Framework sends it).
fn client_context(e: &EventArgs, dir: &std::path::Path) -> anyhow::Result<Option<String>> {
    let text = match (&e.context, &e.context_path) {
        (Some(c), _) => c.clone(),
        (None, Some(p)) => {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            };
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the context file {}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    let json = match serde_json::from_str::<Value>(&text) {
        Ok(v) if !e.raw => v.to_string(),
        _ => Value::String(text).to_string(),
    };
    Ok(Some(base64::engine::general_purpose::STANDARD.encode(json)))
}

/// Prints a result the way the Serverless Framework does: pretty JSON (4 spaces),
/// then the log tail when asked. Returns the exit code.
fn print_result(r: &Reply, log: bool) -> u8 {
    let text = match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            match serde::Serialize::serialize(&v, &mut ser) {
                Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
                Err(_) => String::from_utf8_lossy(&r.body).into_owned(),
            }
        }
        Err(_) => String::from_utf8_lossy(&r.body).into_owned(),
    };
    if !text.is_empty() {
        println!("{text}");
    }
    if log {
        if let Some(tail) = r.header("x-amz-log-result") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(tail)
                .unwrap_or_default();
            println!("--------------------------------------------------------------------");
            print!("{}", String::from_utf8_lossy(&decoded));
        }
    }
    u8::from(r.header("x-amz-function-error").is_some())
}

async fn invoke_remote(
    g: &Global,
    args: &InvokeArgs,
    e: &EventArgs,
    p: &Project,
) -> anyhow::Result<()> {
    let f = p.function(&e.function)?;
    let payload = event_payload(e, &p.dir)?;
    let context = client_context(e, &p.dir)?;
    let api = Api::new(&g.endpoint);
    let target = match &args.qualifier {
        Some(q) => format!("{}:{q}", f.name),
        None => f.name.clone(),
    };
    let mut headers = vec![("x-amz-invocation-type", args.r#type.as_str())];
    if args.log {
        headers.push(("x-amz-log-type", "Tail"));
    }
    if let Some(c) = &context {
        headers.push(("x-amz-client-context", c.as_str()));
    }
    let r = api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{target}/invocations"),
            &headers,
            payload,
        )
        .await
        .map_err(|e| unreachable(&g.endpoint, e))?;
    match r.status {
        200 => match print_result(&r, args.log) {
            0 => Ok(()),
            code => Err(Exit(code).into()),
        },
        202 | 204 => {
            println!(
                "{}",
                if r.status == 202 {
                    "Invocation accepted (Event)."
                } else {
                    "Dry run succeeded: the function can be invoked."
                }
            );
            Ok(())
        }
        _ => Err(server_error(&format!("invoking {target}"), &r)),
    }
}

/// Runs one function through an in-process server with a throwaway data dir.
/// `refuse` (or unset) or `nearest`, from the environment variable `name`.
fn fallback_from_env(name: &str) -> anyhow::Result<stratus_server::interpreters::Fallback> {
    use stratus_server::interpreters::Fallback;
    match std::env::var(name).as_deref() {
        Err(_) | Ok("") | Ok("refuse") => Ok(Fallback::Refuse),
        Ok("nearest") => Ok(Fallback::Nearest),
        Ok(other) => anyhow::bail!("{name}={other}: expected refuse or nearest"),
    }
}

async fn invoke_local(g: &Global, e: &EventArgs, env: &[String]) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let f = p.function(&e.function)?.clone();
    let payload = event_payload(e, &p.dir)?;
    let context = client_context(e, &p.dir)?;
    let mut vars = f.environment.clone();
    for kv in env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv}: expected KEY=VALUE"))?;
        vars.insert(k.to_string(), v.to_string());
    }
    let packages = crate::pack::package(&p, Some(&e.function), &p.output_dir(), &|_| {})?;
    let artifact = packages
        .by_function
        .get(&e.function)
        .context("the function was not packaged")?;
    let data = tempfile::tempdir().context("cannot create a temporary data dir")?;
    let mut cfg = stratus_server::ServerConfig::new(data.path(), "127.0.0.1:0".parse()?);
    cfg.shutdown_grace = std::time::Duration::from_secs(1);
    cfg.region = p.service.region.clone();
    // The settings a server reads from the environment apply to the one embedded
    // here too: a `rubyX.Y` on another Ruby, a deprecated ID on its successor.
    cfg.runtime_fallback = fallback_from_env("STRATUS_RUNTIME_FALLBACK")?;
    cfg.legacy_runtimes = fallback_from_env("STRATUS_LEGACY_RUNTIMES")?;
    let server = stratus_server::start(cfg).await?;
    let api = Api::with_signer(
        &format!("http://{}", server.addr()),
        stratus_cli::signing::Signer::for_embedded(&server),
    );
    let result = async {
        let put = api.call("PUT", &format!("/stratus/v1/blobs/{}", artifact.sha256), &[], artifact.bytes.clone()).await?;
        if put.status != 201 {
            return Err(server_error("storing the package", &put));
        }
        let body = json!({
            "FunctionName": f.name, "Runtime": f.runtime.as_str(), "Handler": f.handler, "Role": "local",
            "MemorySize": f.memory_size, "Timeout": f.timeout, "Environment": { "Variables": vars },
            "Code": { "StratusBlobSha256": artifact.sha256 },
        });
        let r = api.call("POST", "/2015-03-31/functions", &[], body.to_string()).await?;
        if r.status != 201 {
            return Err(server_error("creating the local function", &r));
        }
        let mut headers = vec![("x-amz-log-type", "Tail")];
        if let Some(c) = &context {
            headers.push(("x-amz-client-context", c.as_str()));
        }
        let r = api
            .call("POST", &format!("/2015-03-31/functions/{}/invocations", f.name), &headers, payload)
            .await?;
        if r.status != 200 {
            return Err(server_error("invoking locally", &r));
        }
        Ok(print_result(&r, true))
    }
    .await;
    server.shutdown().await;
    match result? {
        0 => Ok(()),
        code => Err(Exit(code).into()),
    }
}

pub(crate) async fn run(g: &Global, args: InvokeArgs) -> anyhow::Result<()> {
    match (&args.local, &args.event) {
        (
            Some(Local::Local {
                event,
                env,
                docker,
                docker_arg,
            }),
            _,
        ) => {
            if *docker {
                ui::no_effect("docker", "invoke local runs the function with its runtime's bootstrap, as the server does");
            }
            if docker_arg.is_some() {
                ui::no_effect("docker-arg", "invoke local uses no Docker");
            }
            invoke_local(g, event, env).await
        }
        (None, Some(e)) => {
            let p = project::load(g)?;
            invoke_remote(g, &args, e, &p).await
        }
        (None, None) => bail!("which function? use `stratus invoke -f NAME`"),
    }
}
