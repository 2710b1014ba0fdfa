//! `stratus dev`: an embedded server (data under `.stratus/` in the service), the
//! service deployed to it, and a watcher that redeploys on every change. A redeploy
//! publishes new versions of the functions whose code or configuration changed;
//! their old environments are retired, so the next request runs the new code.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use notify::{RecursiveMode, Watcher};

use crate::client::Api;
use crate::commands::deploy::deploy_project;
use crate::project;
use crate::{ui, Global};

/// `stratus dev` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct DevArgs {
    /// Port of the local API (0 picks a free one).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Port of the HTTP gateway (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    gateway_port: u16,
    /// Deploy once and serve, without watching files.
    #[arg(long)]
    no_watch: bool,
}

/// Whether an event can change what is deployed: file contents, names or the tree,
/// outside the directories Stratus and tools write to.
fn relevant(ev: &notify::Event, root: &Path) -> bool {
    use notify::event::ModifyKind;
    use notify::EventKind;
    match ev.kind {
        EventKind::Modify(ModifyKind::Metadata(_)) => return false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => {}
        _ => return false,
    }
    ev.paths.iter().any(|path| {
        let rel = path.strip_prefix(root).unwrap_or(path);
        match rel.components().next() {
            None => false,
            Some(c) => !matches!(
                c.as_os_str().to_str(),
                Some(".stratus" | ".serverless" | ".git" | "target" | "__pycache__")
            ),
        }
    })
}

pub(crate) async fn run(g: &Global, args: DevArgs) -> anyhow::Result<()> {
    let p = project::load(g)?;
    let data = p.dir.join(".stratus").join("data");
    let mut cfg = stratus_server::ServerConfig::new(&data, ([127, 0, 0, 1], args.port).into());
    cfg.shutdown_grace = Duration::from_secs(2);
    cfg.gateway = Some(([127, 0, 0, 1], args.gateway_port).into());
    cfg.region = p.service.region.clone();
    let server = stratus_server::start(cfg)
        .await
        .context("cannot start the local server")?;
    let endpoint = format!("http://{}", server.addr());
    println!(
        "Stratus dev server on {endpoint} (data in {})",
        data.display()
    );
    if let Some(g) = server.gateway_addr() {
        println!("HTTP gateway on http://{g}");
    }
    // Reloads read the same file, wherever `--config` pointed.
    let g = Global {
        endpoint: endpoint.clone(),
        config: Some(p.config_file.clone()),
        ..g.clone()
    };
    let api = Api::with_signer(
        &endpoint,
        stratus_cli::signing::Signer::for_embedded(&server),
    );
    let deployed = deploy_project(&p, &api, &g, None).await;
    if let Err(e) = &deployed {
        ui::warn(&format!("deploy failed: {e:#}"));
    }
    for (key, f) in &p.service.functions {
        println!(
            "  {key}: stratus invoke -f {key} --endpoint {endpoint}    (function {})",
            f.name
        );
    }
    if let Ok(info) = api
        .call("GET", &p.api_path(), &[], "")
        .await
        .and_then(|r| r.json())
    {
        for f in info["functions"].as_array().into_iter().flatten() {
            for ep in f["endpoints"].as_array().into_iter().flatten() {
                println!(
                    "  {} - {}",
                    ep["method"].as_str().unwrap_or(""),
                    ep["url"].as_str().unwrap_or("")
                );
            }
        }
    }

    let (tx, rx) = mpsc::channel();
    let root = p.dir.canonicalize().unwrap_or(p.dir.clone());
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let _ = tx.send(ev);
        }
    })
    .context("cannot watch the service directory")?;
    if !args.no_watch {
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .context("cannot watch the service directory")?;
        println!("Watching {} for changes (Ctrl-C to stop)", root.display());
    }
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    loop {
        let rx2 = rx.clone();
        let root2 = root.clone();
        // Wait (off the async workers) for a relevant change, then let the burst settle.
        let changed = tokio::task::spawn_blocking(move || -> bool {
            let Ok(rx) = rx2.lock() else { return false };
            loop {
                match rx.recv() {
                    Ok(ev) if relevant(&ev, &root2) => break,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
            while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
            true
        });
        tokio::select! {
            _ = crate::shutdown_signal() => break,
            r = changed => {
                if !r.unwrap_or(false) {
                    break;
                }
                println!("Change detected: redeploying");
                match project::load_from(&g, &p.dir) {
                    Ok(p) => {
                        if let Err(e) = deploy_project(&p, &api, &g, None).await {
                            ui::warn(&format!("redeploy failed: {e:#}"));
                        }
                    }
                    Err(e) => ui::warn(&format!("serverless.yml: {e:#}")),
                }
            }
        }
    }
    drop(watcher);
    println!("Stopping the dev server");
    server.shutdown().await;
    Ok(())
}
