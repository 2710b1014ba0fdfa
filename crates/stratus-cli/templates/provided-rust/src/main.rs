use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn hello(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({
        "statusCode": 200,
        "body": json!({ "message": "Go Serverless with Stratus!", "input": event.payload }).to_string(),
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
