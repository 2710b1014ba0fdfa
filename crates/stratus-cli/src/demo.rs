//! `stratus demo`: the embedded default. Starts a server, deploys the bundled Node.js
//! example as function `hello` through the real Lambda API, publishes it, puts two
//! provisioned environments behind alias `live`, waits for READY, invokes it warm and
//! cold, and prints results and log lines.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::json;

use crate::client::Api;
use crate::ServerArgs;

const HELLO_JS: &str = include_str!("../../../examples/hello-node/index.js");

/// Zips the bundled example (deterministically) and returns it base64-encoded.
pub(crate) fn example_zip_b64(dir: &std::path::Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("index.js"), HELLO_JS)?;
    let zip = stratus_package::zip_dir(dir)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(zip))
}

pub(crate) async fn run(args: ServerArgs, exit: bool) -> anyhow::Result<()> {
    let server = stratus_server::start(args.config()).await?;
    let base = server.url();
    println!(
        "stratus server listening on {base}  (data dir {})",
        args.data_dir.display()
    );
    let transport = match server.tls_ca() {
        Some(ca) => stratus_cli::transport::Transport::new(Some(ca), false)?,
        None => stratus_cli::transport::Transport::default_for_process(),
    };
    let api = Api::with_parts(
        &base,
        &transport,
        stratus_cli::signing::Signer::for_embedded(&server),
    );
    let zip = example_zip_b64(&args.data_dir.join("demo").join("hello-node"))?;

    let exists = api
        .call("GET", "/2015-03-31/functions/hello", &[], "")
        .await?
        .status
        == 200;
    let r = if exists {
        api.call(
            "PUT",
            "/2015-03-31/functions/hello/code",
            &[],
            json!({ "ZipFile": zip }).to_string(),
        )
        .await?
    } else {
        let body = json!({
            "FunctionName": "hello", "Runtime": "nodejs20.x", "Handler": "index.handler",
            "Role": "arn:aws:iam::000000000000:role/demo", "Code": { "ZipFile": zip }, "Timeout": 10,
        });
        api.call("POST", "/2015-03-31/functions", &[], body.to_string())
            .await?
    };
    if r.status >= 300 {
        bail!(
            "deploying the example failed: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    println!("deployed function hello (nodejs20.x, examples/hello-node/index.js)");
    let v = api
        .call("POST", "/2015-03-31/functions/hello/versions", &[], "{}")
        .await?
        .json()?;
    let version = v["Version"]
        .as_str()
        .context("PublishVersion returned no Version")?
        .to_string();
    let alias = json!({ "Name": "live", "FunctionVersion": version }).to_string();
    let created = api
        .call(
            "POST",
            "/2015-03-31/functions/hello/aliases",
            &[],
            alias.clone(),
        )
        .await?;
    if created.status == 409 {
        api.call(
            "PUT",
            "/2015-03-31/functions/hello/aliases/live",
            &[],
            alias,
        )
        .await?;
    }
    println!("published version {version}, alias live -> {version}");

    let started = Instant::now();
    let pc = api
        .call(
            "PUT",
            "/2019-09-30/functions/hello/provisioned-concurrency?Qualifier=live",
            &[],
            r#"{"ProvisionedConcurrentExecutions":2}"#,
        )
        .await?;
    if pc.status != 202 {
        bail!(
            "provisioned concurrency failed: {}",
            String::from_utf8_lossy(&pc.body)
        );
    }
    loop {
        let st = api
            .call(
                "GET",
                "/2019-09-30/functions/hello/provisioned-concurrency?Qualifier=live",
                &[],
                "",
            )
            .await?
            .json()?;
        match st["Status"].as_str() {
            Some("READY") => break,
            Some("FAILED") => bail!("provisioned concurrency failed: {}", st["StatusReason"]),
            _ if started.elapsed() > Duration::from_secs(60) => {
                bail!("provisioned concurrency not READY after 60 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    println!(
        "provisioned concurrency 2 on hello:live READY in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    for (label, target) in [
        ("warm (provisioned)", "hello:live"),
        ("warm (provisioned)", "hello:live"),
        ("cold ($LATEST, on-demand)", "hello"),
    ] {
        let t = Instant::now();
        let r = api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{target}/invocations"),
                &[("x-amz-log-type", "Tail")],
                r#"{"name":"Stratus"}"#,
            )
            .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "\ninvoke {target} — {label}, {ms:.2} ms, status {}, version {}",
            r.status,
            r.header("x-amz-executed-version").unwrap_or("?")
        );
        println!("  result: {}", String::from_utf8_lossy(&r.body));
        if let Some(tail) = r.header("x-amz-log-result") {
            let log = base64::engine::general_purpose::STANDARD
                .decode(tail)
                .unwrap_or_default();
            for line in String::from_utf8_lossy(&log).lines() {
                println!("  log | {line}");
            }
        }
    }
    let trust = server
        .tls_ca()
        .map(|ca| format!(" --ca-bundle {}", ca.display()))
        .unwrap_or_default();
    println!("\nTry it with the AWS CLI:\n  aws lambda invoke --endpoint-url {base}{trust} --function-name hello:live --log-type Tail out.json");
    if !exit {
        println!("Serving until Ctrl-C.");
        crate::shutdown_signal().await;
    }
    server.shutdown().await;
    Ok(())
}
