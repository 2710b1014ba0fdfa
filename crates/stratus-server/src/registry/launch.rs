//! A version's [`FunctionSpec`]: how the scheduler starts an environment for it —
//! the program and arguments of its runtime, its working directory (the unpacked
//! code), and the environment Lambda defines plus the function's own variables.

use std::sync::Arc;
use std::time::Duration;

use stratus_package::Limits;
use stratus_scheduler::{FunctionSpec, Mount, Network};

use super::Registry;
use crate::model::FunctionConfiguration;

impl Registry {
    pub(super) fn build_spec(
        &self,
        c: &FunctionConfiguration,
        code_hex: &str,
    ) -> Result<FunctionSpec, String> {
        let code_dir = self.code_root.join(code_hex);
        if !code_dir.is_dir() {
            let zip = self
                .blobs
                .get(code_hex)
                .map_err(|e| format!("code package unavailable: {e}"))?;
            stratus_package::unpack_once(&self.code_root, code_hex, &zip, &Limits::default())
                .map_err(|e| format!("cannot unpack code: {e}"))?;
        }
        let (mut program, args) = self.runtimes.launch(&c.runtime, &code_dir, c.memory_size)?;
        // Lambda's go1.x ran the binary its handler names; `stratus deploy` builds it
        // as `bootstrap`, a zip made for go1.x carries it under the handler's name.
        if c.runtime == "go1.x" && !program.is_file() {
            let named = std::path::Path::new(&c.handler);
            if named
                .components()
                .all(|p| matches!(p, std::path::Component::Normal(_)))
            {
                program = code_dir.join(named);
            }
        }
        let mut path = String::new();
        if let Some(dir) = self.runtimes.interpreter_dir(&c.runtime) {
            path.push_str(&dir.display().to_string());
            path.push(':');
        }
        path.push_str("/usr/local/bin:/usr/bin:/bin:/opt/bin");
        let id = &self.identity;
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("TZ".into(), ":UTC".into()),
            ("_HANDLER".into(), c.handler.clone()),
            ("LAMBDA_TASK_ROOT".into(), code_dir.display().to_string()),
            (
                "LAMBDA_RUNTIME_DIR".into(),
                self.runtimes.runtime_dir().display().to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), c.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), c.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                c.memory_size.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{}", c.function_name),
            ),
            ("AWS_REGION".into(), id.region.clone()),
            ("AWS_DEFAULT_REGION".into(), id.region.clone()),
            (
                "AWS_EXECUTION_ENV".into(),
                format!("AWS_Lambda_{}", c.runtime),
            ),
            ("AWS_ENDPOINT_URL".into(), id.endpoint_url.clone()),
            // Credentials for the AWS SDKs inside the function when the scheduler has
            // no credential issuer; with one, each environment gets its own
            // (`stratus_scheduler::CredentialIssuer`) in place of these.
            ("AWS_ACCESS_KEY_ID".into(), "stratus".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "stratus".into()),
        ];
        if let Some((k, v)) = self.runtimes.aws_sdk().and_then(|s| s.env_for(&c.runtime)) {
            env.push((k.into(), v));
        }
        if let Some(vars) = &c.environment {
            for (k, v) in &vars.variables {
                env.retain(|(ek, _)| ek != k);
                env.push((k.clone(), v.clone()));
            }
        }
        Ok(FunctionSpec {
            pool_key: Arc::from(format!(
                "{}\0{}\0{}",
                c.function_name, c.version, c.revision_id
            )),
            function_name: Arc::from(c.function_name.as_str()),
            version: Arc::from(c.version.as_str()),
            memory_mb: c.memory_size,
            timeout: Duration::from_secs(c.timeout as u64),
            program,
            args,
            cwd: code_dir.clone(),
            env,
            log_group: Arc::from(format!("/aws/lambda/{}", c.function_name)),
            role_policy: c.role_policy.as_deref().map(Arc::from),
            mounts: {
                let mut m = vec![Mount {
                    host: code_dir.clone(),
                    target: "/var/task".into(),
                    read_only: true,
                }];
                m.extend(self.runtimes.mounts());
                m
            },
            tmp_mb: c.ephemeral_storage.size,
            // Egress is opt-in per function: under the linux driver a routed veth
            // pair behind NAT, the host firewalled off (README, Security).
            network: if c.egress {
                Network::Egress
            } else {
                Network::Isolated
            },
        })
    }
}
