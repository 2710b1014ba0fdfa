//! `stratus bench --autoscaling`: cold starts on a daily-shaped trace, replayed with
//! a fixed provisioned concurrency and with autoscaling (issue 9, part 2).
//!
//! The server runs with an accelerated autoscaler clock (`--autoscale-speed`
//! simulated seconds per real second, 720 by default: a simulated day in two real
//! minutes) and an idle keep-alive of one real second (12–24 simulated minutes with
//! the reaper's one-second period, about what Lambda keeps an idle environment).
//! The trace is a day of load: one caller at night, rising from 06:00 to a peak of
//! `--day-peak` concurrent callers at 13:30 and back down by 21:00 (a squared sine).
//! Each caller invokes a Python function that sleeps 100 ms, through the alias
//! `live`, asking for the log tail; an invocation whose tail has an `Init Duration`
//! line ran on a cold (on-demand) environment, so that is a cold start.
//!
//! Three rounds, each on a fresh function, replay the same trace:
//! - **fixed**: provisioned concurrency 1 (what `provisionedConcurrency: 1` gives);
//! - **target tracking**: min 1, max peak + 2, target utilization 0.7;
//! - **tracking + scheduled**: the same, plus scheduled actions raising the
//!   minimum to half the peak at 06:30 and lowering it to 1 at 21:00 (simulated).
//!
//! Each round reports invocations, cold starts, the largest provisioned
//! concurrency reached, the provisioned environment-hours it paid for, and the
//! scaling activities. The time of day is the autoscaler's own: the activity that
//! registering a target records carries its clock, which anchors the day.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use super::{create_with, BenchArgs};
use crate::client::Api;

const DIM: &str = "lambda:function:ProvisionedConcurrency";

/// The function every round deploys: sleeps 100 ms.
const HANDLER: &str =
    "import time\n\ndef handler(event, context):\n    time.sleep(0.1)\n    return {'ok': True}\n";

/// Concurrent callers at simulated hour `h` (0..24) of the day.
fn callers_at(h: f64, peak: u32) -> u32 {
    let extra = if (6.0..21.0).contains(&h) {
        let s = (std::f64::consts::PI * (h - 6.0) / 15.0).sin();
        f64::from(peak.saturating_sub(1)) * s * s
    } else {
        0.0
    };
    1 + extra.round() as u32
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Fixed,
    Tracking,
    Scheduled,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Fixed => "fixed provisioned concurrency 1",
            Self::Tracking => "target tracking (0.7, min 1)",
            Self::Scheduled => "target tracking + scheduled min",
        }
    }
}

/// The outcome of one round.
#[derive(Debug)]
struct Round {
    mode: Mode,
    invocations: u64,
    cold: u64,
    max_provisioned: u64,
    env_hours: f64,
    activities: usize,
}

async fn aas(api: &Api, op: &str, body: Value) -> anyhow::Result<Value> {
    let target = format!("AnyScaleFrontendService.{op}");
    let r = api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            body.to_string(),
        )
        .await?;
    if r.status != 200 {
        bail!("{op}: {}", String::from_utf8_lossy(&r.body));
    }
    r.json()
}

async fn requested(api: &Api, name: &str) -> u64 {
    let path = format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=live");
    match api.call("GET", &path, &[], "").await {
        Ok(r) if r.status == 200 => r
            .json()
            .ok()
            .and_then(|v| v["RequestedProvisionedConcurrentExecutions"].as_u64())
            .unwrap_or(0),
        _ => 0,
    }
}

/// `at(...)` of the instant `t` (UTC).
fn at(t: time::OffsetDateTime) -> String {
    format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Creates the round's function with version 1 behind alias `live`, and its
/// provisioned concurrency (fixed or autoscaled). Returns the autoscaler's time
/// and the real instant it was read at (the day's anchor).
async fn prepare(
    api: &Api,
    name: &str,
    zip: &[u8],
    mode: Mode,
    peak: u32,
) -> anyhow::Result<Option<(time::OffsetDateTime, Instant)>> {
    create_with(api, name, "python3.12", "app.handler", zip, 256).await?;
    let v = api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{name}/versions"),
            &[],
            "{}",
        )
        .await?
        .json()?;
    let version = v["Version"].as_str().context("no version")?;
    let r = api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{name}/aliases"),
            &[],
            json!({"Name": "live", "FunctionVersion": version}).to_string(),
        )
        .await?;
    if r.status != 201 {
        bail!("CreateAlias: {}", String::from_utf8_lossy(&r.body));
    }
    if mode == Mode::Fixed {
        let r = api
            .call(
                "PUT",
                &format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=live"),
                &[],
                json!({"ProvisionedConcurrentExecutions": 1}).to_string(),
            )
            .await?;
        if r.status != 202 {
            bail!(
                "provisioned concurrency: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
        return Ok(None);
    }
    let rid = format!("function:{name}:live");
    aas(
        api,
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid, "ScalableDimension": DIM,
               "MinCapacity": 1, "MaxCapacity": peak + 2}),
    )
    .await?;
    // Registering raised the capacity to the minimum: that activity carries the
    // autoscaler's clock.
    let acts = aas(
        api,
        "DescribeScalingActivities",
        json!({"ServiceNamespace": "lambda", "ResourceId": rid}),
    )
    .await?;
    let read_at = Instant::now();
    let start = acts["ScalingActivities"][0]["StartTime"]
        .as_f64()
        .context("no activity after registering")?;
    let now = time::OffsetDateTime::from_unix_timestamp_nanos((start * 1e9) as i128)?;
    aas(
        api,
        "PutScalingPolicy",
        json!({"PolicyName": "utilization", "ServiceNamespace": "lambda", "ResourceId": rid,
               "ScalableDimension": DIM, "PolicyType": "TargetTrackingScaling",
               "TargetTrackingScalingPolicyConfiguration": {
                   "TargetValue": 0.7,
                   "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}}}),
    )
    .await?;
    Ok(Some((now, read_at)))
}

async fn caller(
    api: Api,
    target: String,
    index: u32,
    active: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    counts: Arc<(AtomicU64, AtomicU64)>,
) {
    while !stop.load(Ordering::Relaxed) {
        if index >= active.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let r = api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{target}/invocations"),
                &[("x-amz-log-type", "Tail")],
                "{}",
            )
            .await;
        let Ok(r) = r else { continue };
        if r.status != 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        counts.0.fetch_add(1, Ordering::Relaxed);
        use base64::Engine as _;
        let tail = base64::engine::general_purpose::STANDARD
            .decode(r.header("x-amz-log-result").unwrap_or_default())
            .unwrap_or_default();
        if String::from_utf8_lossy(&tail).contains("Init Duration:") {
            counts.1.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn round(api: &Api, mode: Mode, zip: &[u8], speed: f64, peak: u32) -> anyhow::Result<Round> {
    let name = format!(
        "day-{}",
        match mode {
            Mode::Fixed => "fixed",
            Mode::Tracking => "tracking",
            Mode::Scheduled => "scheduled",
        }
    );
    let anchor = prepare(api, &name, zip, mode, peak).await?;
    let started = Instant::now();
    if mode == Mode::Scheduled {
        if let Some((now, read_at)) = anchor {
            // The day starts now (simulated midnight is the round's start).
            let day0 = now + (started - read_at).mul_f64(speed);
            let rid = format!("function:{name}:live");
            for (action, hour, min) in [("morning", 6.5, (peak / 2).max(1)), ("evening", 21.0, 1)] {
                aas(
                    api,
                    "PutScheduledAction",
                    json!({"ServiceNamespace": "lambda", "ResourceId": rid, "ScalableDimension": DIM,
                           "ScheduledActionName": action,
                           "Schedule": at(day0 + Duration::from_secs_f64(hour * 3600.0)),
                           "ScalableTargetAction": {"MinCapacity": min}}),
                )
                .await?;
            }
        }
    }
    let active = Arc::new(AtomicU32::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let target = format!("{name}:live");
    let tasks: Vec<_> = (0..peak)
        .map(|i| {
            tokio::spawn(caller(
                api.clone(),
                target.clone(),
                i,
                active.clone(),
                stop.clone(),
                counts.clone(),
            ))
        })
        .collect();
    let day = Duration::from_secs_f64(24.0 * 3600.0 / speed);
    let (mut max_prov, mut env_hours, mut last) = (0u64, 0.0f64, Instant::now());
    let mut prov = requested(api, &name).await;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= day {
            break;
        }
        let hour = elapsed.as_secs_f64() * speed / 3600.0;
        active.store(callers_at(hour, peak), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Provisioned environments paid for, integrated over simulated time.
        env_hours += prov as f64 * last.elapsed().as_secs_f64() * speed / 3600.0;
        last = Instant::now();
        prov = requested(api, &name).await;
        max_prov = max_prov.max(prov);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let activities = if mode == Mode::Fixed {
        0
    } else {
        aas(
            api,
            "DescribeScalingActivities",
            json!({"ServiceNamespace": "lambda", "ResourceId": format!("function:{name}:live")}),
        )
        .await?["ScalingActivities"]
            .as_array()
            .map_or(0, Vec::len)
    };
    // Its environments go before the next round starts.
    let _ = api
        .call("DELETE", &format!("/2015-03-31/functions/{name}"), &[], "")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(Round {
        mode,
        invocations: counts.0.load(Ordering::Relaxed),
        cold: counts.1.load(Ordering::Relaxed),
        max_provisioned: max_prov,
        env_hours,
        activities,
    })
}

/// Runs the three rounds against a server of its own.
pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let speed = args.autoscale_speed.max(1.0);
    let peak = args.day_peak.max(2);
    let work = super::tempfile_dir()?;
    let pydir = work.join("python");
    std::fs::create_dir_all(&pydir)?;
    std::fs::write(pydir.join("app.py"), HANDLER)?;
    let zip = stratus_package::zip_dir(&pydir)?;
    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .args(["server", "--listen", "127.0.0.1:0", "--shutdown-grace", "1"])
        .args(["--sandbox", &args.sandbox, "--idle-keep-alive", "1"])
        .args(["--autoscale-clock-speed", &speed.to_string(), "--data-dir"])
        .arg(work.join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let server_pid = server.id().context("server pid")?;
    let mut lines =
        tokio::io::BufReader::new(server.stdout.take().context("server stdout")?).lines();
    let line = lines
        .next_line()
        .await?
        .context("the server printed no address")?;
    let base = line.rsplit(' ').next().unwrap_or_default().to_string();
    let creds_file = work.join("data").join("credentials");
    let (creds, region) = stratus_cli::signing::load_profile(&creds_file, "default")
        .map_err(anyhow::Error::msg)?
        .with_context(|| {
            format!(
                "the server wrote no credentials to {}",
                creds_file.display()
            )
        })?;
    let signer = stratus_cli::signing::Signer::with(
        creds,
        region.as_deref().unwrap_or("us-east-1"),
        &creds_file.display().to_string(),
    );
    let api = Api::with_signer(&base, signer);
    println!(
        "stratus bench --autoscaling — server pid {server_pid} on {base}; a simulated day in {:.0} s (clock {speed}x), peak {peak} callers, Python function sleeping 100 ms",
        24.0 * 3600.0 / speed
    );
    for mode in [Mode::Fixed, Mode::Tracking, Mode::Scheduled] {
        let r = round(&api, mode, &zip, speed, peak).await;
        match r {
            Ok(r) => {
                println!(
                    "{:<34} invocations {:>6}, cold starts {:>4} ({:.2} %), provisioned max {:>2}, {:>5.1} environment-hours, {} scaling activities",
                    r.mode.label(),
                    r.invocations,
                    r.cold,
                    100.0 * r.cold as f64 / r.invocations.max(1) as f64,
                    r.max_provisioned,
                    r.env_hours,
                    r.activities
                );
            }
            Err(e) => {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &server_pid.to_string()])
                    .status();
                return Err(e);
            }
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server_pid.to_string()])
        .status();
    let _ = server.wait().await;
    let _ = stratus_package::remove_tree(&work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_curve_is_quiet_at_night_and_peaks_after_noon() {
        assert_eq!(callers_at(3.0, 8), 1);
        assert_eq!(callers_at(23.0, 8), 1);
        assert_eq!(callers_at(13.5, 8), 8);
        assert!(callers_at(9.0, 8) > 1 && callers_at(9.0, 8) < 8);
    }
}
