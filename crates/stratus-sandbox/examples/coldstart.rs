//! What each driver adds to starting a process: start `/bin/true` N times through
//! the `process` driver and the `linux` driver (with its pool of parked keepers, and
//! the netns taken from it before the start as the scheduler does), and print start-to-exec percentiles (what a cold start pays before the
//! runtime's own code runs). Last, the same with routed egress: what the veth pair,
//! addresses and route add to taking the netns.
//!
//! `cargo run --release -p stratus-sandbox --example coldstart -- 200` (as root).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool, not a service

use std::time::Instant;

use stratus_sandbox::{
    Driver, LaunchSpec, LinuxDriver, LinuxOptions, Mount, Network, ProcessDriver,
};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(
    d: &dyn Driver,
    n: u32,
    netns_ahead: bool,
    network: Network,
) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    let mut total = Vec::new();
    let mut ns_times = Vec::new();
    for i in 0..n {
        let mut s = LaunchSpec::new(
            "/bin/true".into(),
            vec![],
            code.clone(),
            dir.path().join(format!("env-{i}")),
        );
        s.mounts = vec![Mount {
            host: code.clone(),
            target: "/var/task".into(),
            read_only: true,
        }];
        // Cold starts are apart in time: the pool refills in between.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let t = Instant::now();
        if netns_ahead {
            s.network = network;
            if let Some((ns, _listeners)) = d.new_netns(network).unwrap() {
                s.netns = Some(ns);
            }
            ns_times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = Instant::now();
        let mut p = d.start(&s).unwrap();
        // start returns once the runtime was exec'd (the spawner waits for exec).
        total.push(t.elapsed().as_secs_f64() * 1000.0);
        let st = p.wait().await.unwrap();
        assert!(st.success());
        p.killer().kill_tree();
    }
    (total, ns_times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let (mut bare, _) = measure(&ProcessDriver, n, false, Network::Isolated).await;
    println!(
        "process driver: start to exec of /bin/true p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut bare, 0.5),
        pct(&mut bare, 0.99)
    );
    for seccomp in [true, false] {
        let linux = LinuxDriver::new(LinuxOptions {
            seccomp,
            pool: 4,
            ..Default::default()
        })
        .expect("the linux driver (needs root)");
        let (mut t, mut ns) = measure(&linux, n, true, Network::Isolated).await;
        println!(
            "linux driver (seccomp {}): start to exec p50 {:.2} ms, p99 {:.2} ms; netns + listeners p50 {:.2} ms; added over process p50 {:.2} ms",
            if seccomp { "on" } else { "off" },
            pct(&mut t, 0.5),
            pct(&mut t, 0.99),
            pct(&mut ns, 0.5),
            pct(&mut t, 0.5) + pct(&mut ns, 0.5) - pct(&mut bare, 0.5)
        );
        if seccomp {
            let (mut te, mut nse) = measure(&linux, n, true, Network::Egress).await;
            println!(
                "  routed egress: start to exec p50 {:.2} ms; netns + listeners + veth pair, addresses, route p50 {:.2} ms, p99 {:.2} ms; added over isolated p50 {:.2} ms",
                pct(&mut te, 0.5),
                pct(&mut nse, 0.5),
                pct(&mut nse, 0.99),
                pct(&mut te, 0.5) + pct(&mut nse, 0.5) - pct(&mut t, 0.5) - pct(&mut ns, 0.5)
            );
        }
        linux.shutdown();
    }
}
