//! What a denied call answers, in AWS's words and shapes: the message
//! `User: {principal} is not authorized to perform: {action} on resource: {resource}`
//! followed by `because no identity-based policy allows the {action} action`
//! (nothing allowed it) or `with an explicit deny in an identity-based policy`, and
//! the error envelope of the API called: Lambda's REST-JSON (403, header
//! `x-amzn-ErrorType: AccessDeniedException`, body `{"Type":"User","message":…}`,
//! also used for `/stratus/v1`) or the SQS JSON protocol (403,
//! `{"__type":"com.amazon.coral.service#AccessDeniedException","message":…}` with
//! `x-amzn-query-error: AccessDenied;Sender`). SQS writes the action in lower case in
//! its message (`sqs:sendmessage`), as AWS's SQS does.

use crate::classify::{Protocol, Request};
use crate::policy::Decision;

/// The text of an `AccessDeniedException` for `principal_arn` (`arn:aws:iam::…:user/…`
/// or an assumed-role ARN), `action` and `resource`; `decision` says whether a Deny
/// matched ([`Decision::ExplicitDeny`]) or nothing allowed it.
pub fn denied_message(
    principal_arn: &str,
    action: &str,
    resource: &str,
    decision: Decision,
) -> String {
    let why = match decision {
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
        _ => format!("because no identity-based policy allows the {action} action"),
    };
    format!("User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {why}")
}

/// A complete 403 answer, ready to be turned into the server's response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDenied {
    /// HTTP status: 403.
    pub status: u16,
    /// Headers to set (the caller adds its request id).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: String,
}

/// The answer to `request` denied for `principal_arn` with `decision`, in the error
/// shape of the request's API.
pub fn access_denied(principal_arn: &str, request: &Request, decision: Decision) -> AccessDenied {
    match request.protocol {
        Protocol::Lambda | Protocol::Stratus => {
            let message =
                denied_message(principal_arn, &request.action, &request.resource, decision);
            AccessDenied {
                status: 403,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("x-amzn-errortype", "AccessDeniedException".into()),
                ],
                body: serde_json::json!({ "Type": "User", "message": message }).to_string(),
            }
        }
        Protocol::AutoScaling => {
            let message =
                denied_message(principal_arn, &request.action, &request.resource, decision);
            AccessDenied {
                status: 400,
                headers: vec![
                    ("content-type", "application/x-amz-json-1.1".into()),
                    ("x-amzn-errortype", "AccessDeniedException".into()),
                ],
                body: serde_json::json!({
                    "__type": "AccessDeniedException",
                    "message": message,
                })
                .to_string(),
            }
        }
        Protocol::Sqs => {
            let action = request.action.to_ascii_lowercase();
            let message = denied_message(principal_arn, &action, &request.resource, decision);
            AccessDenied {
                status: 403,
                headers: vec![
                    ("content-type", "application/x-amz-json-1.0".into()),
                    ("x-amzn-query-error", "AccessDenied;Sender".into()),
                ],
                body: serde_json::json!({
                    "__type": "com.amazon.coral.service#AccessDeniedException",
                    "message": message,
                })
                .to_string(),
            }
        }
        Protocol::Logs => {
            let message =
                denied_message(principal_arn, &request.action, &request.resource, decision);
            AccessDenied {
                status: 400,
                headers: vec![("content-type", "application/x-amz-json-1.1".into())],
                body: serde_json::json!({
                    "__type": "AccessDeniedException",
                    "message": message,
                })
                .to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "arn:aws:iam::000000000000:user/ci";
    const FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:hello";

    #[test]
    fn lambda_messages_as_aws_words_them() {
        assert_eq!(
            denied_message(USER, "lambda:InvokeFunction", FN, Decision::ImplicitDeny),
            "User: arn:aws:iam::000000000000:user/ci is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:000000000000:function:hello because no identity-based policy allows the lambda:InvokeFunction action"
        );
        assert_eq!(
            denied_message(USER, "lambda:GetFunction", FN, Decision::ExplicitDeny),
            "User: arn:aws:iam::000000000000:user/ci is not authorized to perform: lambda:GetFunction on resource: arn:aws:lambda:us-east-1:000000000000:function:hello with an explicit deny in an identity-based policy"
        );
    }

    #[test]
    fn lambda_shape() {
        let r = Request {
            action: "lambda:InvokeFunction".into(),
            resource: FN.into(),
            protocol: Protocol::Lambda,
        };
        let d = access_denied(USER, &r, Decision::ImplicitDeny);
        assert_eq!(d.status, 403);
        assert!(d
            .headers
            .contains(&("x-amzn-errortype", "AccessDeniedException".into())));
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap_or_default();
        assert_eq!(body["Type"], "User");
        assert_eq!(
            body["message"],
            denied_message(USER, "lambda:InvokeFunction", FN, Decision::ImplicitDeny)
        );
    }

    #[test]
    fn sqs_shape() {
        let r = Request {
            action: "sqs:SendMessage".into(),
            resource: "arn:aws:sqs:us-east-1:000000000000:jobs".into(),
            protocol: Protocol::Sqs,
        };
        let d = access_denied(USER, &r, Decision::ImplicitDeny);
        assert_eq!(d.status, 403);
        assert!(d
            .headers
            .contains(&("x-amzn-query-error", "AccessDenied;Sender".into())));
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap_or_default();
        assert_eq!(
            body["__type"],
            "com.amazon.coral.service#AccessDeniedException"
        );
        assert_eq!(
            body["message"],
            "User: arn:aws:iam::000000000000:user/ci is not authorized to perform: sqs:sendmessage on resource: arn:aws:sqs:us-east-1:000000000000:jobs because no identity-based policy allows the sqs:sendmessage action"
        );
    }
}
