//! Authorization end to end: a function calling Stratus with its environment's own
//! credentials can do what its execution role (serverless.yml
//! `provider.iam.role.statements`) allows and gets `AccessDeniedException`
//! otherwise; a key narrowed by `stratus keys create --policy` likewise, checked with
//! boto3 for AWS's exact messages; and the admin key's secret is sealed on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

async fn deploy_authz(s: &Server, root: &std::path::Path) -> std::path::PathBuf {
    let svc = root.join("svc");
    copy_tree(&std::path::Path::new(FIXTURES).join("authz"), &svc);
    stratus_ok(&svc, &format!("http://{}", s.addr), &["deploy"]).await;
    svc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_can_do_what_its_role_allows_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    deploy_authz(&s, dir.path()).await;
    let r = s.invoke("authz-dev-caller", "{}").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    // Temporary credentials of its own, not the server's key.
    assert_eq!(v["key"], "ASIA", "{v}");
    assert_eq!(v["has_token"], true, "{v}");
    assert_eq!(v["target"], "ok", "{v}");
    assert_eq!(v["inbox"], "ok", "{v}");
    for denied in ["other", "list"] {
        assert_eq!(v[denied]["code"], "AccessDeniedException", "{denied}: {v}");
        let msg = v[denied]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("User: arn:aws:sts::000000000000:assumed-role/authz-dev-caller/"),
            "{msg}"
        );
        assert!(
            msg.contains("because no identity-based policy allows"),
            "{msg}"
        );
    }
    assert!(
        v["other"]["message"]
            .as_str()
            .unwrap()
            .contains("lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:000000000000:function:authz-dev-other"),
        "{v}"
    );
    assert!(
        v["outbox"]["code"]
            .as_str()
            .unwrap()
            .starts_with("AccessDenied"),
        "{v}"
    );
    assert!(
        v["outbox"]["message"]
            .as_str()
            .unwrap()
            .contains("sqs:sendmessage"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_narrowed_by_its_policy_is_denied_with_aws_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let svc = deploy_authz(&s, dir.path()).await;
    let policy = svc.join("ci-policy.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":["lambda:Invoke*","lambda:GetFunction*"],
           "Resource":"arn:aws:lambda:*:*:function:authz-dev-target"},
          {"Effect":"Deny","Action":"lambda:GetFunctionConfiguration","Resource":"*"}]}"#,
    )
    .unwrap();
    let endpoint = format!("http://{}", s.addr);
    let out = stratus_ok(
        &svc,
        &endpoint,
        &["keys", "create", "ci", "--policy", policy.to_str().unwrap()],
    )
    .await;
    let key: Value = serde_json::from_str(&out).unwrap();
    let o = tokio::process::Command::new("python3")
        .arg(format!(
            "{}/tests/sdk/boto3_key_policy.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(&endpoint)
        .arg(key["AccessKeyId"].as_str().unwrap())
        .arg(key["SecretAccessKey"].as_str().unwrap())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .unwrap();
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("boto3 key policy: all checks passed"),
        "{text}"
    );

    // A policy Stratus cannot evaluate is refused when attached, saying where.
    let bad = svc.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    )
    .unwrap();
    let o = stratus_cmd(
        &svc,
        &endpoint,
        &["keys", "create", "bad", "--policy", bad.to_str().unwrap()],
    )
    .await;
    assert!(!o.status.success());
    assert!(output_text(&o).contains("Condition"), "{}", output_text(&o));

    // The key's secret (and the admin's) is sealed in state.db.
    let secret = key["SecretAccessKey"].as_str().unwrap().to_string();
    s.terminate().await;
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "credentials" {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is in {} in plain text",
                p.display()
            );
        }
    }
}
