//! One module per command family.

pub(crate) mod cluster;
pub(crate) mod create;
pub(crate) mod deploy;
pub(crate) mod dev;
pub(crate) mod info;
pub(crate) mod install_sdk;
pub(crate) mod invoke;
pub(crate) mod keys;
pub(crate) mod logs;
pub(crate) mod queue;
pub(crate) mod rotate_key;

use anyhow::bail;

use crate::client::Reply;

/// Turns an error reply from the server into a readable error.
pub(crate) fn server_error(what: &str, r: &Reply) -> anyhow::Error {
    let detail = r
        .json()
        .ok()
        .and_then(|v| {
            let kind = r.header("x-amzn-errortype").unwrap_or("Error").to_string();
            v["message"].as_str().map(|m| format!("{kind}: {m}"))
        })
        .unwrap_or_else(|| format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
    anyhow::anyhow!("{what} failed: {detail}")
}

/// Fails when the server is not reachable, with a hint.
pub(crate) fn unreachable(endpoint: &str, e: anyhow::Error) -> anyhow::Error {
    if e.is::<stratus_cli::signing::NotAuthenticated>() {
        return e;
    }
    // The whole chain: the transport's reason (a refused certificate, plain HTTP
    // refused) is in the sources, not in hyper's "client error (Connect)".
    let detail = format!("{e:#}");
    let hint = if detail.contains("certificate") {
        "trust the server's CA with --ca-bundle FILE or AWS_CA_BUNDLE"
    } else {
        "start one with `stratus server` or set --endpoint / STRATUS_ENDPOINT"
    };
    anyhow::anyhow!("cannot reach the Stratus server at {endpoint} ({detail}); {hint}")
}

/// Parses `30m`, `2h`, `1d`, `45s`, an ISO time or epoch milliseconds into epoch ms.
pub(crate) fn parse_start_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        if let Ok(n) = s[..s.len() - 1].parse::<i64>() {
            let ms = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => bail!("--startTime {s}: unknown unit '{unit}' (use s, m, h or d)"),
            };
            // A huge or negative count would wrap (or panic) instead of meaning a time.
            return n
                .checked_mul(ms)
                .filter(|_| n >= 0)
                .and_then(|back| now_ms.checked_sub(back))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--startTime {s}: out of range (a whole number of {unit} back, 0 or more)"
                    )
                });
        }
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let fmt = time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &fmt) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(t) = time::OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &fmt) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    bail!("--startTime {s}: expected a duration like 30m or 2h, an ISO 8601 time, or epoch milliseconds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times() {
        let now = 10_000_000;
        assert_eq!(parse_start_time("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_start_time("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(
            parse_start_time("1700000000000", now).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_start_time("2024-01-02T03:04:05Z", now).unwrap(),
            1_704_164_645_000
        );
        assert_eq!(
            parse_start_time("2024-01-02", now).unwrap(),
            1_704_153_600_000
        );
        assert!(parse_start_time("5y", now)
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_start_time("yesterday", now).is_err());
        // Counts that would wrap (or go forward) are refused, not turned into a time.
        for bad in [
            "9223372036854775807m",
            "153722867280912931m",
            "-5m",
            "99999999999999999999d",
        ] {
            assert!(parse_start_time(bad, now).is_err(), "{bad}");
        }
    }
}
