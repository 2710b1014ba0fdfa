//! `stratus keys`: the server's access keys — create (the secret is printed once,
//! as `aws iam create-access-key` does), list, delete, attach-policy, detach-policy.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{server_error, unreachable};
use crate::client::Api;
use crate::Global;

/// `stratus keys` options.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    what: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an access key for a user name; prints {"AccessKeyId", "SecretAccessKey"}.
    Create {
        /// The user name the key belongs to.
        name: String,
        /// A policy document (JSON file) for the key; its name is the file's stem.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// List the keys (never their secrets).
    List,
    /// Delete a key.
    Delete {
        /// The access key id.
        access_key_id: String,
    },
    /// Attach (or replace) a named policy document on a key.
    AttachPolicy {
        /// The access key id.
        access_key_id: String,
        /// The policy document (JSON file).
        #[arg(long)]
        policy: PathBuf,
        /// The policy's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// Detach a named policy from a key.
    DetachPolicy {
        /// The access key id.
        access_key_id: String,
        /// The policy's name.
        #[arg(long)]
        name: String,
    },
}

fn read_policy(path: &Path) -> anyhow::Result<(String, String)> {
    let doc = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    serde_json::from_str::<Value>(&doc).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: the policy is not valid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy")
        .to_string();
    Ok((name, doc))
}

pub(crate) async fn run(g: &Global, args: KeysArgs) -> anyhow::Result<()> {
    let api = Api::new(&g.endpoint);
    let ep = &g.endpoint;
    match args.what {
        KeysCommand::Create { name, policy } => {
            let mut body = json!({ "UserName": name });
            if let Some(p) = policy {
                let (pname, doc) = read_policy(&p)?;
                body["PolicyName"] = pname.into();
                body["PolicyDocument"] = doc.into();
            }
            let r = api
                .call(
                    "POST",
                    "/stratus/v1/keys",
                    &[("content-type", "application/json")],
                    body.to_string(),
                )
                .await
                .map_err(|e| unreachable(ep, e))?;
            if r.status != 201 {
                return Err(server_error("creating the key", &r));
            }
            let v = r.json()?;
            let k = &v["AccessKey"];
            let out = json!({
                "AccessKeyId": k["AccessKeyId"],
                "SecretAccessKey": k["SecretAccessKey"],
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        KeysCommand::List => {
            let r = api
                .call("GET", "/stratus/v1/keys", &[], "")
                .await
                .map_err(|e| unreachable(ep, e))?;
            if r.status != 200 {
                return Err(server_error("listing the keys", &r));
            }
            println!("{}", serde_json::to_string_pretty(&r.json()?)?);
        }
        KeysCommand::Delete { access_key_id } => {
            let r = api
                .call(
                    "DELETE",
                    &format!("/stratus/v1/keys/{}", enc(&access_key_id)),
                    &[],
                    "",
                )
                .await
                .map_err(|e| unreachable(ep, e))?;
            if r.status != 204 {
                return Err(server_error("deleting the key", &r));
            }
            println!("deleted {access_key_id}");
        }
        KeysCommand::AttachPolicy {
            access_key_id,
            policy,
            name,
        } => {
            let (stem, doc) = read_policy(&policy)?;
            let name = name.unwrap_or(stem);
            let r = api
                .call(
                    "PUT",
                    &format!(
                        "/stratus/v1/keys/{}/policies/{}",
                        enc(&access_key_id),
                        enc(&name)
                    ),
                    &[("content-type", "application/json")],
                    doc,
                )
                .await
                .map_err(|e| unreachable(ep, e))?;
            if r.status != 200 {
                return Err(server_error("attaching the policy", &r));
            }
            println!("attached {name} to {access_key_id}");
        }
        KeysCommand::DetachPolicy {
            access_key_id,
            name,
        } => {
            let r = api
                .call(
                    "DELETE",
                    &format!(
                        "/stratus/v1/keys/{}/policies/{}",
                        enc(&access_key_id),
                        enc(&name)
                    ),
                    &[],
                    "",
                )
                .await
                .map_err(|e| unreachable(ep, e))?;
            if r.status != 204 {
                return Err(server_error("detaching the policy", &r));
            }
            println!("detached {name} from {access_key_id}");
        }
    }
    Ok(())
}

/// A path segment, percent-encoded.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
