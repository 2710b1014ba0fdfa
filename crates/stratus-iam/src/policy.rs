//! IAM policy documents: [`Policy::parse`] checks a JSON document the way IAM does
//! for identity-based policies (with errors that say what is wrong and where) and
//! [`evaluate`] decides a request: an explicit Deny wins, then an Allow, and anything
//! not allowed is denied implicitly.
//!
//! Supported: `Version` (`2012-10-17`, `2008-10-17`), `Id`, `Statement` (one object or
//! an array), `Sid`, `Effect`, `Action`/`NotAction`, `Resource`/`NotResource` (a string
//! or an array of strings) with `*` and `?` wildcards. Actions compare without regard
//! to case, resources exactly. `Condition` and `Principal`/`NotPrincipal` are refused:
//! Stratus has no condition keys, and a principal has no place in a policy attached to
//! an identity.

use serde_json::{Map, Value};

use crate::wildcard;

/// Largest policy document accepted, in bytes. IAM's own limits are smaller (10,240
/// characters for a role's inline policies); this one only bounds the work a hostile
/// document can cause.
pub const MAX_POLICY_BYTES: usize = 128 * 1024;

/// A parsed, checked policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `Version`: `2012-10-17` or `2008-10-17` (the default when absent, as in IAM).
    pub version: String,
    /// `Id`, when given.
    pub id: Option<String>,
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Sid`, when given.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Action` or `NotAction`.
    pub action: Patterns,
    /// `Resource` or `NotResource`.
    pub resource: Patterns,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// The patterns of `Action`/`Resource` (`Only`) or `NotAction`/`NotResource`
/// (`AllBut`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    /// Matches what any pattern matches.
    Only(Vec<String>),
    /// Matches what no pattern matches.
    AllBut(Vec<String>),
}

impl Patterns {
    fn matches(&self, value: &str, fold_case: bool) -> bool {
        let any = |ps: &[String]| ps.iter().any(|p| wildcard::matches(p, value, fold_case));
        match self {
            Patterns::Only(ps) => any(ps),
            Patterns::AllBut(ps) => !any(ps),
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A `Deny` statement matches.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Decides whether `action` (`lambda:InvokeFunction`) on `resource` (an ARN, or `*`
/// for actions that name no resource) is allowed by `policies` together: any matching
/// `Deny` wins, then any matching `Allow`; otherwise it is denied implicitly.
pub fn evaluate(policies: &[Policy], action: &str, resource: &str) -> Decision {
    let mut allowed = false;
    for s in policies.iter().flat_map(|p| &p.statements) {
        if s.action.matches(action, true) && s.resource.matches(resource, false) {
            match s.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Checks every request against `policies`: `Ok` when all are allowed, else the
/// first refused request with its decision (for [`crate::access_denied`]).
pub fn authorize<'r>(
    policies: &[Policy],
    requests: &'r [crate::Request],
) -> Result<(), (&'r crate::Request, Decision)> {
    for r in requests {
        let d = evaluate(policies, &r.action, &r.resource);
        if !d.is_allowed() {
            return Err((r, d));
        }
    }
    Ok(())
}

/// Why a policy document was refused (IAM answers these as
/// `MalformedPolicyDocument`). `at` says where: `policy`, `Statement[2]`,
/// `Statement[0].Action[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct PolicyError {
    /// Where in the document.
    pub at: String,
    /// What is wrong.
    pub kind: PolicyErrorKind,
}

/// What is wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrorKind {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// Over [`MAX_POLICY_BYTES`].
    #[error("the document is {0} bytes; at most {MAX_POLICY_BYTES} are accepted")]
    TooLarge(usize),
    /// A value of the wrong JSON type.
    #[error("expected {0}")]
    Expected(&'static str),
    /// A key IAM does not define here.
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    /// A `Version` other than the two IAM knows.
    #[error("Version `{0}` is not supported: use \"2012-10-17\" (or \"2008-10-17\")")]
    BadVersion(String),
    /// No `Statement`, or an empty array.
    #[error("the policy has no statements")]
    NoStatement,
    /// A `Sid` with characters IAM refuses.
    #[error("Sid `{0}` must contain only letters and digits")]
    BadSid(String),
    /// `Effect` missing.
    #[error("missing Effect (\"Allow\" or \"Deny\")")]
    MissingEffect,
    /// `Effect` not `Allow`/`Deny`.
    #[error("Effect `{0}` must be \"Allow\" or \"Deny\"")]
    BadEffect(String),
    /// Neither, or both, of a key and its `Not` form.
    #[error("a statement needs exactly one of {0} and Not{0}")]
    OneOf(&'static str),
    /// An action not written `service:Action` (or `*`).
    #[error("action `{0}` must be \"*\" or service:ActionName (e.g. lambda:InvokeFunction), with only letters, digits, * and ? in the name")]
    BadAction(String),
    /// A resource neither an ARN nor `*`.
    #[error(
        "resource `{0}` must be \"*\" or an ARN (arn:partition:service:region:account:resource)"
    )]
    BadResource(String),
    /// A policy variable (`${aws:username}`), which Stratus cannot substitute.
    #[error("`{0}` uses a policy variable (${{…}}), which Stratus does not support")]
    PolicyVariable(String),
    /// `Condition`, `Principal` or `NotPrincipal`.
    #[error("{0} is not supported by Stratus{1}")]
    Unsupported(&'static str, &'static str),
}

fn err(at: impl Into<String>, kind: PolicyErrorKind) -> PolicyError {
    PolicyError {
        at: at.into(),
        kind,
    }
}

impl Policy {
    /// Parses and checks a policy document. Never panics, whatever the input.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        Self::parse_bytes(json.as_bytes())
    }

    /// [`Policy::parse`] on raw bytes (the fuzz target's entry point).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Policy, PolicyError> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(err("policy", PolicyErrorKind::TooLarge(bytes.len())));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| err("policy", PolicyErrorKind::NotJson(e.to_string())))?;
        Self::from_value(&value)
    }

    /// Checks an already parsed document.
    pub fn from_value(value: &Value) -> Result<Policy, PolicyError> {
        let Value::Object(doc) = value else {
            return Err(err("policy", PolicyErrorKind::Expected("a JSON object")));
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(err("policy", PolicyErrorKind::UnknownKey(key.clone())));
            }
        }
        let version = match doc.get("Version") {
            None => "2008-10-17".to_string(),
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => v.clone(),
            Some(Value::String(v)) => {
                return Err(err("Version", PolicyErrorKind::BadVersion(v.clone())))
            }
            Some(_) => return Err(err("Version", PolicyErrorKind::Expected("a string"))),
        };
        let id = match doc.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(err("Id", PolicyErrorKind::Expected("a string"))),
        };
        let variables = version == "2012-10-17";
        let statements = match doc.get("Statement") {
            None => return Err(err("policy", PolicyErrorKind::NoStatement)),
            Some(Value::Object(s)) => vec![statement(s, "Statement", variables)?],
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(err("Statement", PolicyErrorKind::NoStatement))
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let at = format!("Statement[{i}]");
                    match item {
                        Value::Object(s) => statement(s, &at, variables),
                        _ => Err(err(at, PolicyErrorKind::Expected("a statement object"))),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(err(
                    "Statement",
                    PolicyErrorKind::Expected("a statement object or an array of them"),
                ))
            }
        };
        Ok(Policy {
            version,
            id,
            statements,
        })
    }

    /// Whether `action` on `resource` is allowed by this policy alone.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        evaluate(std::slice::from_ref(self), action, resource).is_allowed()
    }
}

fn statement(s: &Map<String, Value>, at: &str, variables: bool) -> Result<Statement, PolicyError> {
    for key in s.keys() {
        let kind = match key.as_str() {
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource" => continue,
            "Condition" => PolicyErrorKind::Unsupported(
                "Condition",
                " (it has no condition keys; split the statement by resource instead)",
            ),
            "Principal" | "NotPrincipal" => PolicyErrorKind::Unsupported(
                if key == "Principal" {
                    "Principal"
                } else {
                    "NotPrincipal"
                },
                " in a policy attached to a key or a function's role (the principal is whoever holds it)",
            ),
            _ => PolicyErrorKind::UnknownKey(key.clone()),
        };
        return Err(err(at, kind));
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) if sid.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(sid.clone())
        }
        Some(Value::String(sid)) => {
            return Err(err(
                format!("{at}.Sid"),
                PolicyErrorKind::BadSid(sid.clone()),
            ))
        }
        Some(_) => {
            return Err(err(
                format!("{at}.Sid"),
                PolicyErrorKind::Expected("a string"),
            ))
        }
    };
    let effect = match s.get("Effect") {
        None => return Err(err(at, PolicyErrorKind::MissingEffect)),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => {
            return Err(err(
                format!("{at}.Effect"),
                PolicyErrorKind::BadEffect(e.clone()),
            ))
        }
        Some(_) => {
            return Err(err(
                format!("{at}.Effect"),
                PolicyErrorKind::Expected("\"Allow\" or \"Deny\""),
            ))
        }
    };
    let action = patterns(s, at, "Action", |a| {
        if valid_action(a) {
            Ok(())
        } else {
            Err(PolicyErrorKind::BadAction(a.to_string()))
        }
    })?;
    let resource = patterns(s, at, "Resource", |r| {
        if variables && r.contains("${") {
            Err(PolicyErrorKind::PolicyVariable(r.to_string()))
        } else if valid_resource(r) {
            Ok(())
        } else {
            Err(PolicyErrorKind::BadResource(r.to_string()))
        }
    })?;
    Ok(Statement {
        sid,
        effect,
        action,
        resource,
    })
}

/// `key` or `Not{key}`: a string or a non-empty array of strings, each checked.
fn patterns(
    s: &Map<String, Value>,
    at: &str,
    key: &'static str,
    check: impl Fn(&str) -> Result<(), PolicyErrorKind>,
) -> Result<Patterns, PolicyError> {
    let not_key = format!("Not{key}");
    let (name, value, negated) = match (s.get(key), s.get(&not_key)) {
        (Some(v), None) => (key, v, false),
        (None, Some(v)) => (not_key.as_str(), v, true),
        _ => return Err(err(at, PolicyErrorKind::OneOf(key))),
    };
    let list: Vec<(String, &Value)> = match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{at}.{name}[{i}]"), v))
            .collect(),
        Value::Array(_) => {
            return Err(err(
                format!("{at}.{name}"),
                PolicyErrorKind::Expected("at least one entry"),
            ))
        }
        v => vec![(format!("{at}.{name}"), v)],
    };
    let mut out = Vec::with_capacity(list.len());
    for (where_, v) in list {
        let Value::String(p) = v else {
            return Err(err(where_, PolicyErrorKind::Expected("a string")));
        };
        check(p).map_err(|kind| err(where_, kind))?;
        out.push(p.clone());
    }
    Ok(if negated {
        Patterns::AllBut(out)
    } else {
        Patterns::Only(out)
    })
}

/// `*`, or `vendor:Name` with a literal vendor and a name of letters, digits, `*`
/// and `?`.
fn valid_action(a: &str) -> bool {
    if a == "*" {
        return true;
    }
    let Some((vendor, name)) = a.split_once(':') else {
        return false;
    };
    !vendor.is_empty()
        && vendor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
}

/// `*`, or an ARN with its six parts (the last may hold further `:` and `/`).
fn valid_resource(r: &str) -> bool {
    r == "*" || (r.starts_with("arn:") && r.splitn(6, ':').count() == 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Policy {
        match Policy::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn error(s: &str) -> PolicyError {
        match Policy::parse(s) {
            Ok(p) => panic!("accepted {s}: {p:?}"),
            Err(e) => e,
        }
    }

    const FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:hello";

    #[test]
    fn a_statement_object_or_array_of_strings_or_lists() {
        let p = parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"*"}}"#,
        );
        assert_eq!(p.statements.len(), 1);
        assert_eq!(
            p.statements[0].action,
            Patterns::Only(vec!["lambda:InvokeFunction".into()])
        );
        let p = parse(
            r#"{"Version":"2008-10-17","Id":"x","Statement":[
                {"Sid":"A1","Effect":"Deny","NotAction":["sqs:*","lambda:Get*"],"NotResource":["arn:aws:sqs:us-east-1:000000000000:q"]},
                {"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        assert_eq!(p.version, "2008-10-17");
        assert_eq!(p.id.as_deref(), Some("x"));
        assert_eq!(p.statements[0].sid.as_deref(), Some("A1"));
        assert_eq!(p.statements[0].effect, Effect::Deny);
        assert!(matches!(p.statements[0].resource, Patterns::AllBut(_)));
        // No Version: IAM's default.
        assert_eq!(
            parse(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#).version,
            "2008-10-17"
        );
    }

    #[test]
    fn condition_and_principal_are_refused_naming_the_statement() {
        let e = error(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"*","Resource":"*"},
                {"Effect":"Allow","Action":"*","Resource":"*"},
                {"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
        );
        assert_eq!(e.at, "Statement[2]");
        assert!(matches!(
            e.kind,
            PolicyErrorKind::Unsupported("Condition", _)
        ));
        assert!(
            e.to_string()
                .starts_with("Statement[2]: Condition is not supported by Stratus"),
            "{e}"
        );
        let e = error(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
        );
        assert_eq!(e.at, "Statement");
        assert!(matches!(
            e.kind,
            PolicyErrorKind::Unsupported("Principal", _)
        ));
        let e = error(
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"x"},"Action":"*","Resource":"*"}]}"#,
        );
        assert!(matches!(
            e.kind,
            PolicyErrorKind::Unsupported("NotPrincipal", _)
        ));
    }

    #[test]
    fn malformed_documents_say_what_and_where() {
        type Case = (&'static str, &'static str, fn(&PolicyErrorKind) -> bool);
        let cases: &[Case] = &[
            ("not json", "policy", |k| {
                matches!(k, PolicyErrorKind::NotJson(_))
            }),
            ("[]", "policy", |k| {
                matches!(k, PolicyErrorKind::Expected(_))
            }),
            (r#"{"Version":"2012-10-17"}"#, "policy", |k| {
                *k == PolicyErrorKind::NoStatement
            }),
            (r#"{"Statement":[]}"#, "Statement", |k| {
                *k == PolicyErrorKind::NoStatement
            }),
            (
                r#"{"Version":"2020-01-01","Statement":[]}"#,
                "Version",
                |k| matches!(k, PolicyErrorKind::BadVersion(_)),
            ),
            (r#"{"Version":7,"Statement":[]}"#, "Version", |k| {
                matches!(k, PolicyErrorKind::Expected(_))
            }),
            (r#"{"Statment":[]}"#, "policy", |k| {
                *k == PolicyErrorKind::UnknownKey("Statment".into())
            }),
            (r#"{"Statement":"x"}"#, "Statement", |k| {
                matches!(k, PolicyErrorKind::Expected(_))
            }),
            (r#"{"Statement":[1]}"#, "Statement[0]", |k| {
                matches!(k, PolicyErrorKind::Expected(_))
            }),
            (
                r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#,
                "Statement[0]",
                |k| *k == PolicyErrorKind::MissingEffect,
            ),
            (
                r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
                "Statement[0].Effect",
                |k| matches!(k, PolicyErrorKind::BadEffect(_)),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
                "Statement[0]",
                |k| *k == PolicyErrorKind::OneOf("Action"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}]}"#,
                "Statement[0]",
                |k| *k == PolicyErrorKind::OneOf("Action"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#,
                "Statement[0]",
                |k| *k == PolicyErrorKind::OneOf("Resource"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":["lambda:Get*","InvokeFunction"],"Resource":"*"}]}"#,
                "Statement[0].Action[1]",
                |k| matches!(k, PolicyErrorKind::BadAction(_)),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
                "Statement[0].Action",
                |k| matches!(k, PolicyErrorKind::Expected(_)),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":[3],"Resource":"*"}]}"#,
                "Statement[0].Action[0]",
                |k| matches!(k, PolicyErrorKind::Expected(_)),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"my-queue"}]}"#,
                "Statement[0].Resource",
                |k| matches!(k, PolicyErrorKind::BadResource(_)),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","NotResource":["*","arn:aws:sqs"]}]}"#,
                "Statement[0].NotResource[1]",
                |k| matches!(k, PolicyErrorKind::BadResource(_)),
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:sqs:us-east-1:1:${aws:username}"}]}"#,
                "Statement[0].Resource",
                |k| matches!(k, PolicyErrorKind::PolicyVariable(_)),
            ),
            (
                r#"{"Statement":[{"Sid":"has space","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                "Statement[0].Sid",
                |k| matches!(k, PolicyErrorKind::BadSid(_)),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}]}"#,
                "Statement[0]",
                |k| *k == PolicyErrorKind::UnknownKey("Extra".into()),
            ),
        ];
        for (doc, at, kind) in cases {
            let e = error(doc);
            assert_eq!(e.at, *at, "{doc}: {e}");
            assert!(kind(&e.kind), "{doc}: {e}");
        }
        let big = format!("{{\"Id\":\"{}\"}}", "x".repeat(MAX_POLICY_BYTES));
        assert!(matches!(error(&big).kind, PolicyErrorKind::TooLarge(_)));
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(matches!(
            Policy::parse_bytes(deep.as_bytes()).map_err(|e| e.kind),
            Err(PolicyErrorKind::NotJson(_))
        ));
        assert!(Policy::parse_bytes(&[0xff, 0xfe, b'{']).is_err());
    }

    #[test]
    fn policy_variables_are_literal_in_the_old_version() {
        let p = parse(
            r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:sqs:r:1:${x}"}]}"#,
        );
        assert!(p.allows("sqs:SendMessage", "arn:aws:sqs:r:1:${x}"));
    }

    #[test]
    fn deny_wins_then_allow_else_implicit_deny() {
        let allow_all = parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        let deny_invoke = parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"lambda:InvokeFunction","Resource":"{FN}"}}]}}"#
        ));
        assert_eq!(
            evaluate(
                std::slice::from_ref(&allow_all),
                "lambda:InvokeFunction",
                FN
            ),
            Decision::Allow
        );
        assert_eq!(
            evaluate(
                &[allow_all.clone(), deny_invoke.clone()],
                "lambda:InvokeFunction",
                FN
            ),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(
                &[deny_invoke.clone(), allow_all.clone()],
                "lambda:InvokeFunction",
                FN
            ),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&[deny_invoke.clone(), allow_all], "lambda:GetFunction", FN),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&[deny_invoke], "lambda:GetFunction", FN),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&[], "lambda:GetFunction", FN),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn authorize_needs_every_request_allowed() {
        use crate::{Protocol, Request};
        let p = parse(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"lambda:*","Resource":"{FN}"}}]}}"#
        ));
        let req = |action: &str, resource: &str| Request {
            action: action.into(),
            resource: resource.into(),
            protocol: Protocol::Lambda,
        };
        let ok = [
            req("lambda:GetFunction", FN),
            req("lambda:InvokeFunction", FN),
        ];
        assert!(authorize(std::slice::from_ref(&p), &ok).is_ok());
        let mixed = [
            req("lambda:GetFunction", FN),
            req("lambda:ListFunctions", "*"),
        ];
        let (refused, d) = authorize(std::slice::from_ref(&p), &mixed).unwrap_err();
        assert_eq!(refused.action, "lambda:ListFunctions");
        assert_eq!(d, Decision::ImplicitDeny);
    }

    #[test]
    fn actions_ignore_case_resources_do_not() {
        let p = parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"LAMBDA:invoke*","Resource":"{FN}"}}]}}"#
        ));
        assert!(p.allows("lambda:InvokeFunction", FN));
        assert!(!p.allows("lambda:InvokeFunction", &FN.replace("hello", "Hello")));
        assert!(!p.allows("lambda:GetFunction", FN));
    }

    #[test]
    fn an_unqualified_arn_does_not_cover_versions_or_aliases() {
        // As Lambda documents: a permission on the unqualified ARN is valid only for
        // calls through the unqualified ARN; `:*` (or `*`) is needed for the others.
        let p = parse(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"{FN}"}}]}}"#
        ));
        assert!(p.allows("lambda:InvokeFunction", FN));
        assert!(!p.allows("lambda:InvokeFunction", &format!("{FN}:prod")));
        let p = parse(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":["{FN}","{FN}:*"]}}]}}"#
        ));
        assert!(p.allows("lambda:InvokeFunction", &format!("{FN}:prod")));
        assert!(p.allows("lambda:InvokeFunction", &format!("{FN}:$LATEST")));
        assert!(!p.allows("lambda:InvokeFunction", &format!("{FN}2")));
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = parse(
            r#"{"Statement":[{"Effect":"Allow","NotAction":"lambda:Delete*","NotResource":"arn:aws:lambda:*:*:function:secret*"}]}"#,
        );
        assert!(p.allows("lambda:InvokeFunction", FN));
        assert!(!p.allows("lambda:DeleteFunction", FN));
        assert!(!p.allows(
            "lambda:InvokeFunction",
            "arn:aws:lambda:us-east-1:0:function:secret-x"
        ));
        // A Deny with NotAction denies everything else.
        let p = parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"sqs:*","Resource":"*"}]}"#,
        );
        assert!(p.allows("sqs:SendMessage", "arn:aws:sqs:us-east-1:0:q"));
        assert_eq!(
            evaluate(&[p], "lambda:InvokeFunction", FN),
            Decision::ExplicitDeny
        );
    }
}
