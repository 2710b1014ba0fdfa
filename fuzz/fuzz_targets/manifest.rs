//! serverless.yml text → `stratus_manifest::load_str` (parse, variables, schema,
//! model) and `printed_str` (what `stratus print` shows). Any input must end in a
//! service or an error with a position, never a panic or a hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use stratus_fuzz::{scratch_dir, text};
use stratus_manifest::printed::printed_str;
use stratus_manifest::{load_str, Options};

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    // `${file(…)}` reads the local disk, as Serverless does: keep the fuzzer away from
    // device files (/dev/zero never ends) and the rest of the machine.
    if ["/dev", "/proc", "/sys", "/run", "dev/", "proc/"]
        .iter()
        .any(|p| text.contains(p))
    {
        return;
    }
    let dir = scratch_dir();
    let opts = Options {
        instance_id: Some("fuzz".into()),
        ..Options::default()
    };
    let file: Arc<str> = "serverless.yml".into();
    match load_str(text, file.clone(), false, dir, &opts) {
        Ok((service, warnings)) => {
            // What the manifest accepts, the server must accept too: every setting
            // within Lambda's limits, every name one Lambda takes.
            for f in service.functions.values() {
                let k = &f.key;
                assert!(
                    stratus_rules::MEMORY_MB.contains(&i64::from(f.memory_size)),
                    "{k}: memory {}",
                    f.memory_size
                );
                assert!(
                    stratus_rules::TIMEOUT_S.contains(&i64::from(f.timeout)),
                    "{k}: timeout {}",
                    f.timeout
                );
                assert!(f.maximum_retry_attempts <= 2, "{k}: retries");
                assert!(
                    (60..=21_600).contains(&f.maximum_event_age),
                    "{k}: event age"
                );
                assert!(
                    stratus_rules::is_function_name(&f.name),
                    "{k}: name {:?}",
                    f.name
                );
                if let (Some(p), Some(r)) = (f.provisioned_concurrency, f.reserved_concurrency) {
                    assert!(p <= r, "{k}: provisioned {p} > reserved {r}");
                }
            }
            // The resolved model is what the CLI sends: it must serialize.
            let _ = serde_json::to_vec(&service);
            for w in &warnings {
                let _ = w.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = printed_str(text, file, false, dir, &opts).map_err(|e| e.to_string());
    // The JSON form of the same text (serverless.json).
    let _ = load_str(text, "serverless.json".into(), true, dir, &opts).map_err(|e| e.to_string());
});
