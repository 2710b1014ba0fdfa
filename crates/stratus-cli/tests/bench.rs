//! `stratus bench` end to end, at a tiny scale: it starts its own server, drives the
//! no-op `provided` function (the minimal Runtime API client in `bench/noop-bootstrap`)
//! with its load generator, and prints every figure BENCHMARKS.md quotes. The figures
//! themselves are not checked here (they belong to BENCHMARKS.md, not to a timed test);
//! that each one is produced, and that a broken setup is a clear error, is.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{is_root, output_text, workspace_bin};

fn figure(out: &str, line_start: &str, before: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no line starting {line_start:?} in:\n{out}"));
    let head = line
        .split(before)
        .next()
        .unwrap_or_else(|| panic!("no {before:?} in {line}"));
    head.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {before:?} in {line}"))
}

#[tokio::test]
async fn bench_prints_every_figure() {
    let noop = workspace_bin("noop-bootstrap", "noop-bootstrap");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("bench")
        .arg("--bootstrap")
        .arg(&noop)
        .args([
            "--requests",
            "50",
            "--seconds",
            "1",
            "--cold-samples",
            "2",
            "--provisioned",
            "5",
        ])
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(figure(&text, "warm invoke, concurrency 1 ", " µs, p99") > 0.0);
    // Warm p50 with and without a loop of management calls (the figure after "quiet").
    assert!(figure(&text, "warm invoke, concurrency 1, 3 rounds", " µs, p99") > 0.0);
    assert!(
        figure(
            &text,
            "warm invoke, concurrency 1, 3 rounds",
            " management calls"
        ) >= 0.0
    );
    assert!(figure(&text, "warm invoke, concurrency 16 ", " invocations/s") > 0.0);
    assert!(figure(&text, "warm invoke, concurrency 64 ", " invocations/s") > 0.0);
    assert!(figure(&text, "warm invoke nodejs20.x:", " invocations/s") > 0.0);
    assert!(figure(&text, "warm invoke python3.12:", " invocations/s") > 0.0);
    assert!(figure(&text, "cold start provided ", " ms; Stratus adds").is_finite());
    assert!(figure(&text, "cold start nodejs20.x ", " ms; Stratus adds").is_finite());
    assert!(figure(&text, "cold start python3.12 ", " ms; Stratus adds").is_finite());
    assert!(figure(&text, "5 provisioned environments READY in ", " ms;") > 0.0);
}

#[tokio::test]
async fn bench_without_its_bootstrap_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .current_dir(dir.path())
        .args(["bench", "--requests", "1"])
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("target/release/noop-bootstrap not found")
            && text.contains("cargo build --release -p noop-bootstrap"),
        "{text}"
    );
}

#[tokio::test]
async fn bench_attacks_prints_the_neighbour_figures_or_refuses_without_isolation() {
    let noop = workspace_bin("noop-bootstrap", "noop-bootstrap");
    let root = is_root();
    let sandbox = if root { "linux" } else { "process" };
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("bench")
        .arg("--bootstrap")
        .arg(&noop)
        .args(["--attacks", "--requests", "30", "--rounds", "1"])
        .args(["--sandbox", sandbox])
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    if !root {
        // Under `process` the fork bomb would be the host's: refused, saying why.
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("it needs the linux sandbox"), "{text}");
        return;
    }
    assert!(out.status.success(), "{text}");
    for neighbour in ["provided", "python3.12"] {
        for attack in [
            "fork_bomb",
            "memory_bomb",
            "stdout_flood",
            "cpu_spin",
            "tmp_fill",
        ] {
            let line = format!("neighbour {neighbour} during {attack} ");
            assert!(figure(&text, &line, " µs, p99") > 0.0, "{text}");
            // The p99 of all the rounds' calls together, and its ratio.
            assert!(figure(&text, &line, " µs, ratio") > 0.0, "{text}");
            assert!(figure(&text, &line, "; server CPU") > 0.0, "{text}");
        }
    }
    assert!(text.contains("after the attacks: "), "{text}");
    // The bench does not measure the normal figures in this mode.
    assert!(!text.contains("warm invoke, concurrency 16"), "{text}");
}

/// `--attack`, `--neighbour` and `--rounds` choose what `--attacks` measures, and
/// `--attacker-code` replaces the attacker's handler (here one that returns at once,
/// so the attacker is called far more often than the built-in 2-second attacks
/// allow); a file that cannot be read is named in the error.
#[tokio::test]
async fn bench_attacks_runs_the_chosen_attack_neighbour_and_attacker_code() {
    if !is_root() {
        return; // the refusal without isolation is tested above
    }
    let noop = workspace_bin("noop-bootstrap", "noop-bootstrap");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("attacker.py");
    std::fs::write(
        &code,
        "def handler(event, context):\n    return {'attack': event['attack']}\n",
    )
    .unwrap();
    let run = |code: std::path::PathBuf| {
        let noop = noop.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
                .arg("bench")
                .arg("--bootstrap")
                .arg(&noop)
                .args([
                    "--attacks",
                    "--attack",
                    "cpu_spin",
                    "--neighbour",
                    "python3.12",
                ])
                .args(["--requests", "300", "--rounds", "2", "--sandbox", "linux"])
                .arg("--attacker-code")
                .arg(&code)
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(code).await;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" during ")).collect();
    assert_eq!(lines.len(), 2, "the heading and one figure line: {text}");
    assert!(lines[0].contains("2 quiet and 2 attacked rounds"), "{text}");
    assert!(
        lines[1].starts_with("neighbour python3.12 during cpu_spin "),
        "{text}"
    );
    let calls: u64 = lines[1]
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(" attacker calls)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no attacker calls in {}", lines[1]));
    assert!(calls > 4, "the replaced attacker returns at once: {text}");
    assert!(figure(&text, "neighbour python3.12 during cpu_spin ", " µs, ratio") > 0.0);

    let out = run(dir.path().join("missing.py")).await;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cannot read --attacker-code") && text.contains("missing.py"),
        "{text}"
    );
}

/// `stratus bench --cluster`: an embedded node against a cluster node on a real
/// PostgreSQL and NATS, two nodes together, and an invoke through the node without
/// the warm environment, at a tiny scale. Only that each figure is produced is
/// checked (the figures belong to BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_cluster_prints_the_cluster_figures() {
    let noop = workspace_bin("noop-bootstrap", "noop-bootstrap");
    let url = stratus_testkit::Postgres::shared().database();
    let nats = stratus_testkit::Nats::start();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("bench")
        .arg("--bootstrap")
        .arg(&noop)
        .args(["--cluster", &url, "--nats", &nats.url()])
        .args(["--requests", "50", "--seconds", "1", "--rounds", "1"])
        .args(["--nodes", "2"])
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(figure(&text, "warm invoke, one embedded ", " µs, p99") > 0.0);
    assert!(figure(&text, "warm invoke, one cluster node ", " µs, p99") > 0.0);
    assert!(
        figure(
            &text,
            "warm invoke, one cluster node ",
            " invocations/s; concurrency 64"
        ) > 0.0
    );
    assert!(text.contains("cluster / embedded: p50 "), "{text}");
    assert!(
        figure(
            &text,
            "warm invoke, 2 nodes × 16 callers: ",
            " invocations/s in all"
        ) > 0.0
    );
    assert!(figure(&text, "routed invoke ", " µs, p99") > 0.0);

    // Without --nats it says what is missing.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["bench", "--cluster", &url])
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("--cluster needs --nats"), "{text}");
}
