//! Function tags (TagResource, UntagResource, ListTags, CreateFunction's `Tags`,
//! GetFunction's `Tags`, `provider.tags` and function `tags` in serverless.yml) and
//! GetFunction's `Code.Location`, driven by boto3, the AWS CLI, the `stratus` CLI and
//! raw requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:tagged";

/// The ARN as the SDKs put it in the path.
fn encoded(arn: &str) -> String {
    arn.replace(':', "%3A")
}

async fn list_tags(s: &Server, arn_in_path: &str) -> Value {
    let r = s
        .api
        .call("GET", &format!("/2017-03-31/tags/{arn_in_path}"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json_body(&r)["Tags"].clone()
}

async fn tag(s: &Server, arn_in_path: &str, tags: Value) -> Reply {
    s.api
        .call(
            "POST",
            &format!("/2017-03-31/tags/{arn_in_path}"),
            &[],
            json!({ "Tags": tags }).to_string(),
        )
        .await
        .unwrap()
}

async fn get_function(s: &Server, name: &str) -> Value {
    json_body(
        &s.api
            .call("GET", &format!("/2015-03-31/functions/{name}"), &[], "")
            .await
            .unwrap(),
    )
}

/// Fetches a GetFunction answer's `Code.Location` (a URL on this server).
async fn download(s: &Server, got: &Value) -> Reply {
    let location = got["Code"]["Location"].as_str().unwrap();
    let path = location
        .strip_prefix(&format!("http://{}", s.addr))
        .unwrap_or_else(|| panic!("{location} is not on this server"));
    s.api.call("GET", path, &[], "").await.unwrap()
}

fn error_of(r: &Reply) -> (u16, String, String) {
    (
        r.status,
        r.header("x-amzn-errortype").unwrap_or_default().to_string(),
        json_body(r)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_tags_functions_and_downloads_their_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    run_sdk_script(&s, "boto3_tags.py", "boto3 tags: all checks passed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_tags_lists_and_untags() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "tagged",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({}),
    )
    .await;
    let ep = format!("http://{}", s.addr);
    let creds = s.data_dir.join("credentials");
    let aws = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let ep = ep.clone();
        let creds = creds.clone();
        async move {
            tokio::process::Command::new("aws")
                .arg("lambda")
                .args(&args)
                .args([
                    "--endpoint-url",
                    &ep,
                    "--region",
                    "us-east-1",
                    "--output",
                    "json",
                ])
                .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
                .env("AWS_MAX_ATTEMPTS", "1")
                .output()
                .await
                .expect("run the AWS CLI (installed by scripts/test)")
        }
    };
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", output_text(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null)
    };
    ok(aws(&[
        "tag-resource",
        "--resource",
        ARN,
        "--tags",
        "team=core,env=dev,owner=ana",
    ])
    .await);
    assert_eq!(
        ok(aws(&["list-tags", "--resource", ARN]).await)["Tags"],
        json!({"team": "core", "env": "dev", "owner": "ana"})
    );
    ok(aws(&[
        "untag-resource",
        "--resource",
        ARN,
        "--tag-keys",
        "env",
        "owner",
    ])
    .await);
    assert_eq!(
        ok(aws(&["list-tags", "--resource", ARN]).await)["Tags"],
        json!({"team": "core"})
    );
    assert_eq!(
        ok(aws(&["get-function", "--function-name", "tagged"]).await)["Tags"],
        json!({"team": "core"})
    );

    let refused = aws(&["tag-resource", "--resource", ARN, "--tags", "aws:team=x"]).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("(InvalidParameterValueException)")
            && err.contains("keys starting with 'aws:' are reserved"),
        "{err}"
    );
    let missing = aws(&[
        "list-tags",
        "--resource",
        "arn:aws:lambda:us-east-1:000000000000:function:nope",
    ])
    .await;
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("(ResourceNotFoundException)")
            && err.contains(
                "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
            ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_encoded_arns_validation_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]).await;
    let zip = fixture_zip("node");
    s.create_ok(
        "tagged",
        "nodejs20.x",
        "index.handler",
        &zip,
        json!({"Tags": {"team": "core"}}),
    )
    .await;

    // The ARN percent-encoded (as the SDKs send it) and raw both work.
    assert_eq!(list_tags(&s, &encoded(ARN)).await, json!({"team": "core"}));
    assert_eq!(list_tags(&s, ARN).await, json!({"team": "core"}));
    assert_eq!(tag(&s, ARN, json!({"raw": "1"})).await.status, 204);
    assert_eq!(
        tag(&s, &encoded(ARN), json!({"encoded": "2"})).await.status,
        204
    );
    let r = s
        .api
        .call(
            "DELETE",
            &format!("/2017-03-31/tags/{}?tagKeys=raw", encoded(ARN)),
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        list_tags(&s, ARN).await,
        json!({"team": "core", "encoded": "2"})
    );

    // Exactly 50 is allowed; the 51st is refused, whatever the request holds.
    let mut fifty: serde_json::Map<String, Value> = (0..48)
        .map(|i| (format!("k{i}"), Value::from("v")))
        .collect();
    assert_eq!(tag(&s, ARN, Value::Object(fifty.clone())).await.status, 204);
    assert_eq!(list_tags(&s, ARN).await.as_object().unwrap().len(), 50);
    fifty.insert("one-more".into(), "v".into());
    let (status, kind, message) = error_of(&tag(&s, ARN, Value::Object(fifty)).await);
    assert_eq!(
        (status, kind.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert!(
        message.contains(&format!("{ARN} would have 51 tags")),
        "{message}"
    );
    let (_, kind, message) = error_of(&tag(&s, ARN, json!({"Aws:Name": "x"})).await);
    assert_eq!(kind, "InvalidParameterValueException");
    assert!(message.contains("'Aws:Name'") && message.contains("reserved"));
    let long = "k".repeat(129);
    let (status, kind, message) = error_of(&tag(&s, ARN, json!({ long.clone(): "v" })).await);
    assert_eq!((status, kind.as_str()), (400, "ValidationException"));
    assert!(
        message.contains(&format!("Value '{long}' at 'tags'"))
            && message.contains("less than or equal to 128"),
        "{message}"
    );
    let (status, kind, message) = error_of(&tag(&s, ARN, json!(null)).await);
    assert_eq!((status, kind.as_str()), (400, "ValidationException"));
    assert!(message.contains("at 'tags'"), "{message}");

    // Malformed, qualified, unknown, and another region's ARNs.
    for (arn, status, kind, needle) in [
        (
            "tagged".to_string(),
            400,
            "ValidationException",
            "Value 'tagged' at 'resource' failed to satisfy constraint",
        ),
        (
            "arn:aws:lambda:us-east-1:000000000000:layer:tagged".to_string(),
            400,
            "ValidationException",
            "regular expression pattern: arn:",
        ),
        (
            format!("{ARN}:$LATEST"),
            400,
            "InvalidParameterValueException",
            "Tags apply to functions, not to versions or aliases",
        ),
        (
            ARN.replace("tagged", "nope"),
            404,
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
        ),
        (
            ARN.replace("us-east-1", "eu-west-1"),
            404,
            "ResourceNotFoundException",
            "this server's functions are in region us-east-1 and account 000000000000",
        ),
    ] {
        for r in [
            tag(&s, &encoded(&arn), json!({"a": "b"})).await,
            s.api
                .call(
                    "GET",
                    &format!("/2017-03-31/tags/{}", encoded(&arn)),
                    &[],
                    "",
                )
                .await
                .unwrap(),
        ] {
            let (got_status, got_kind, message) = error_of(&r);
            assert_eq!((got_status, got_kind.as_str()), (status, kind), "{arn}");
            assert!(message.contains(needle), "{arn}: {message}");
        }
    }
    let r = s
        .api
        .call(
            "DELETE",
            &format!("/2017-03-31/tags/{}", encoded(ARN)),
            &[],
            "",
        )
        .await
        .unwrap();
    let (status, kind, message) = error_of(&r);
    assert_eq!((status, kind.as_str()), (400, "ValidationException"));
    assert!(message.contains("at 'tagKeys'"), "{message}");

    // Code.Location follows the Host the client used.
    let get = s
        .api
        .call(
            "GET",
            "/2015-03-31/functions/tagged",
            &[("host", "stratus.example:9000")],
            "",
        )
        .await
        .unwrap();
    let sha = stratus_package::sha256_hex(&zip);
    // (presigned with the caller's key for 10 minutes, as Lambda's S3 URL is).
    let location = json_body(&get)["Code"]["Location"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&format!(
            "http://stratus.example:9000/stratus/v1/code/{sha}?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
        )) && location.contains("&X-Amz-Expires=600&"),
        "{location}"
    );

    // Tags (and the code behind Code.Location) survive a restart.
    let before = list_tags(&s, ARN).await;
    assert_eq!(before.as_object().unwrap().len(), 50);
    assert!(s.terminate().await.success());
    let s = Server::start(&data, &[]).await;
    assert_eq!(list_tags(&s, ARN).await, before);
    let got = get_function(&s, "tagged").await;
    assert_eq!(got["Tags"], before);
    let r = download(&s, &got).await;
    assert_eq!(r.status, 200);
    assert_eq!(stratus_package::sha256_hex(&r.body), sha);
    let r = s
        .api
        .call(
            "GET",
            &format!("/stratus/v1/code/{}", "f".repeat(64)),
            &[],
            "",
        )
        .await
        .unwrap();
    let (status, kind, message) = error_of(&r);
    assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));
    assert!(message.contains("is stored"), "{message}");

    // Deleting the function deletes its tags, in the store too.
    let r = s
        .api
        .call("DELETE", "/2015-03-31/functions/tagged", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert!(s.terminate().await.success());
    let s = Server::start(&data, &[]).await;
    s.create_ok("tagged", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    assert_eq!(list_tags(&s, ARN).await, json!({}));
    assert!(s.terminate().await.success());
}

fn write_service(dir: &std::path::Path, provider_tags: &str, function_tags: &str) {
    std::fs::write(
        dir.join("serverless.yml"),
        format!(
            "service: tg\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  tags:\n{provider_tags}functions:\n  hello:\n    handler: handler.hello\n    tags:\n{function_tags}  other:\n    handler: handler.hello\n"
        ),
    )
    .unwrap();
}

async fn function_tags(s: &Server, name: &str) -> Value {
    json_body(
        &s.api
            .call("GET", &format!("/2015-03-31/functions/{name}"), &[], "")
            .await
            .unwrap(),
    )["Tags"]
        .clone()
}

async fn versions(s: &Server, name: &str) -> Vec<String> {
    json_body(
        &s.api
            .call(
                "GET",
                &format!("/2015-03-31/functions/{name}/versions"),
                &[],
                "",
            )
            .await
            .unwrap(),
    )["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_tags_are_applied_on_deploy_and_replaced_on_redeploy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = tmp.path().join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("handler.js"),
        "exports.hello = async () => 'hi';\n",
    )
    .unwrap();
    write_service(
        &dir,
        "    team: core\n    stage: ${sls:stage}\n",
        "      team: api\n      tier: gold\n",
    );
    let out = stratus_ok(&dir, &ep, &["deploy"]).await;
    assert!(
        out.contains("hello: tg-dev-hello (created, version 1)"),
        "{out}"
    );
    // Provider tags merged with the function's; the function's win.
    assert_eq!(
        function_tags(&s, "tg-dev-hello").await,
        json!({"team": "api", "stage": "dev", "tier": "gold"})
    );
    assert_eq!(
        function_tags(&s, "tg-dev-other").await,
        json!({"team": "core", "stage": "dev"})
    );

    // Changed tags replace the old ones exactly, and publish no new version.
    write_service(&dir, "    team: core\n", "      owner: ana\n");
    let o = stratus_cmd(&dir, &ep, &["deploy", "--verbose"]).await;
    assert!(o.status.success(), "{}", output_text(&o));
    let out = output_text(&o);
    assert!(
        out.contains("hello: tg-dev-hello (updated, version 1)"),
        "{out}"
    );
    assert!(out.contains("tags: owner=ana, team=core"), "{out}");
    assert_eq!(
        function_tags(&s, "tg-dev-hello").await,
        json!({"team": "core", "owner": "ana"})
    );
    assert_eq!(
        function_tags(&s, "tg-dev-other").await,
        json!({"team": "core"})
    );
    assert_eq!(versions(&s, "tg-dev-hello").await, ["$LATEST", "1"]);
    assert_eq!(versions(&s, "tg-dev-other").await, ["$LATEST", "1"]);

    // Tags added by hand are dropped by the next deploy (the manifest's are exact)…
    let r = tag(
        &s,
        "arn:aws:lambda:us-east-1:000000000000:function:tg-dev-other",
        json!({"manual": "x"}),
    )
    .await;
    assert_eq!(r.status, 204);
    let out = stratus_ok(&dir, &ep, &["deploy"]).await;
    assert!(
        out.contains("other: tg-dev-other (updated, version 1)"),
        "{out}"
    );
    assert_eq!(
        function_tags(&s, "tg-dev-other").await,
        json!({"team": "core"})
    );
    // …and unchanged tags deploy nothing.
    let out = stratus_ok(&dir, &ep, &["deploy"]).await;
    assert!(out.contains("No changes"), "{out}");

    // Reserved keys in serverless.yml are refused before anything changes.
    write_service(&dir, "    team: core\n", "      aws:owner: ana\n");
    let o = stratus_cmd(&dir, &ep, &["deploy"]).await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("function hello: Tag key 'aws:owner' is not allowed"),
        "{}",
        output_text(&o)
    );
    assert_eq!(
        function_tags(&s, "tg-dev-hello").await,
        json!({"team": "core", "owner": "ana"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_location_streams_a_package_of_many_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    // 400 KB that deflate cannot shrink, so the package spans several 64 KB chunks.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..400 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let index = std::fs::read(format!("{FIXTURES}/node/index.js")).unwrap();
    let zip = raw_zip(&[("index.js", &index[..]), ("noise.bin", &noise[..])]);
    assert!(zip.len() > 300 * 1024);
    s.create_ok("big", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    let r = download(&s, &get_function(&s, "big").await).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(&*zip.len().to_string()));
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert_eq!(r.body.len(), zip.len());
    assert_eq!(
        stratus_package::sha256_hex(&r.body),
        stratus_package::sha256_hex(&zip)
    );
}
