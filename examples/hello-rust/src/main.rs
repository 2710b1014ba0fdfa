//! A `provided.al2023` function built on the official `lambda_runtime` crate: the
//! binary is the package's `bootstrap`. Besides greeting, it has a few behaviours
//! selected by the event, which the integration tests use.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    match payload.get("action").and_then(Value::as_str) {
        Some("sleep") => {
            let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(1000);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        Some("fail") => return Err("requested failure".into()),
        Some("exit") => std::process::exit(3),
        Some("echo") => return Ok(payload),
        _ => {}
    }
    println!("hello from rust {}", ctx.request_id);
    let name = payload
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("world");
    Ok(json!({
        "message": format!("Hello, {name}!"),
        "requestId": ctx.request_id,
        "deadlineMs": ctx.deadline,
        "arn": ctx.invoked_function_arn,
        "initializationType": std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").unwrap_or_default(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
