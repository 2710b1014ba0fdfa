//! IAM policy documents (`stratus-iam`): any bytes through `Policy::parse_bytes`,
//! which must refuse with a located reason or parse, never panic; a parsed policy is
//! evaluated for a few actions and ARNs (total: a decision, never a panic), and an
//! explicit Deny of everything added beside it must win whatever it says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratus_iam::{evaluate, Decision, Policy};

const DENY_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;

fuzz_target!(|data: &[u8]| {
    let policy = match Policy::parse_bytes(data) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let deny = Policy::parse(DENY_ALL).unwrap();
    let both = [policy.clone(), deny];
    for (action, resource) in [
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:000000000000:function:f"),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:000000000000:function:f:prod"),
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:000000000000:q"),
        ("stratus:Deploy", "arn:aws:stratus:us-east-1:000000000000:service/s/dev"),
        ("LAMBDA:listfunctions", "*"),
        ("", ""),
    ] {
        let _ = evaluate(std::slice::from_ref(&policy), action, resource);
        assert_eq!(evaluate(&both, action, resource), Decision::ExplicitDeny);
    }
});
