//! `stratus server rotate-key`: replaces the master key of a stopped server's data
//! dir and re-wraps every data key under it (`stratus-seal`); `--new-data-key`
//! also starts a new data key that seals every new value from then on.

use std::path::PathBuf;

use clap::Args;
use stratus_seal::{KeySource, Rotation, MASTER_KEY_ENV};

/// `stratus server rotate-key`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RotateKeyArgs {
    /// Data directory of the (stopped) server.
    #[arg(long, default_value = "./.stratus", env = "STRATUS_DATA_DIR")]
    data_dir: PathBuf,
    /// Also start a new data key: new values are sealed with it (old ones stay
    /// readable with theirs).
    #[arg(long)]
    new_data_key: bool,
}

/// Rotates the keys; refuses while a server runs on the data dir.
pub(crate) fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    if !dir.join(stratus_seal::keyring::STATE_DB).is_file() {
        anyhow::bail!(
            "{} is not a Stratus data dir (no {})",
            dir.display(),
            stratus_seal::keyring::STATE_DB
        );
    }
    let source = KeySource::for_data_dir(dir, std::env::var(MASTER_KEY_ENV).ok());
    let done = stratus_seal::rotate(
        dir,
        &source,
        Rotation {
            master: true,
            new_data_key: args.new_data_key,
        },
    )?;
    println!(
        "re-wrapped {} data key(s) under a new master key; data key {} seals new values",
        done.rewrapped, done.current_key
    );
    match done.new_env_key {
        Some(key) => {
            // The key came from the environment, so only its owner can store the
            // new one: it is printed once, here, and nowhere else.
            println!("the master key comes from {MASTER_KEY_ENV}; set it to the new key before the next start:");
            println!("{MASTER_KEY_ENV}={}", key.to_base64());
        }
        None => println!("new master key written to {}", source.name()),
    }
    Ok(())
}
