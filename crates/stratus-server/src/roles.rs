//! Execution roles: the policy document each function of a deployment runs with,
//! built from its `serverless.yml` — `provider.iam.role.statements` and the older
//! `provider.iamRoleStatements` for every function, or a function's own `role:` when
//! it names an `AWS::IAM::Role` in `resources` (that role's inline `Policies`).
//!
//! CloudFormation references in `Resource`/`NotResource` are resolved where Stratus
//! creates the resource: `Fn::GetAtt: [Id, Arn]` of an `AWS::SQS::Queue` in
//! `resources` or of a function (`HelloLambdaFunction`), `Ref` of the pseudo
//! parameters and of functions, `Fn::Join` and `Fn::Sub` over those. A reference
//! Stratus cannot resolve never widens what the function may do: it is dropped from
//! an `Allow` (the whole statement when it is in `NotResource`) and becomes `*` in a
//! `Deny`, with a warning naming the statement. The result is checked with
//! `stratus_iam::Policy::parse` before anything is deployed.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::registry::Identity;

/// A function's role policy, and what the deployment should tell the user about it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct RolePolicy {
    /// The policy document (JSON), or `None` when the function has no statements.
    pub(crate) policy: Option<String>,
    /// Warnings (statements changed or ignored, roles Stratus cannot read).
    pub(crate) warnings: Vec<String>,
}

/// What references can point at.
struct Refs<'a> {
    identity: &'a Identity,
    /// Logical id → ARN (queues and functions Stratus creates).
    arns: BTreeMap<String, String>,
    /// Logical id → `Ref` value (function names).
    names: BTreeMap<String, String>,
}

/// The role policy of function `key` of `manifest` (the resolved service as the
/// CLI sends it). `Err` says which statement or role is wrong.
pub(crate) fn role_policy(
    manifest: &Value,
    identity: &Identity,
    key: &str,
) -> Result<RolePolicy, String> {
    let refs = refs(manifest, identity);
    let resources = &manifest["resources"]["Resources"];
    let mut out = RolePolicy::default();
    let (statements, origin) = match &manifest["functions"][key]["role"] {
        Value::Null => (
            manifest["iam_statements"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            "provider.iam.role.statements".to_string(),
        ),
        role => {
            let origin = format!("functions.{key}.role");
            let id = role
                .as_str()
                .or_else(|| role["Ref"].as_str())
                .or_else(|| role["Fn::GetAtt"][0].as_str())
                .or_else(|| {
                    role["Fn::GetAtt"]
                        .as_str()
                        .and_then(|s| s.strip_suffix(".Arn"))
                });
            match id {
                Some(id) if resources[id]["Type"] == "AWS::IAM::Role" => {
                    let props = &resources[id]["Properties"];
                    if props.get("ManagedPolicyArns").is_some() {
                        out.warnings.push(format!(
                            "{origin}: role {id}: Stratus cannot resolve ManagedPolicyArns; only its inline Policies apply"
                        ));
                    }
                    let mut statements = Vec::new();
                    for (i, p) in props["Policies"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        match &p["PolicyDocument"]["Statement"] {
                            Value::Array(s) => statements.extend(s.iter().cloned()),
                            Value::Object(_) => statements.push(p["PolicyDocument"]["Statement"].clone()),
                            _ => {
                                return Err(format!(
                                    "{origin}: role {id}: Policies[{i}].PolicyDocument has no Statement"
                                ))
                            }
                        }
                    }
                    (
                        statements,
                        format!("resources.Resources.{id}.Properties.Policies"),
                    )
                }
                _ => {
                    // A role ARN, an imported value, a logical id of something else:
                    // a role Stratus cannot see.
                    out.warnings.push(format!(
                        "{origin}: Stratus cannot read the IAM role {role} (it is not an AWS::IAM::Role in resources): the function runs with no role policy"
                    ));
                    return Ok(out);
                }
            }
        }
    };
    if statements.is_empty() {
        return Ok(out);
    }
    let mut kept = Vec::new();
    for (i, s) in statements.into_iter().enumerate() {
        let at = format!("{origin}[{i}]");
        if let Some(s) = resolve_statement(s, &refs, &at, &mut out.warnings) {
            kept.push(s);
        }
    }
    if kept.is_empty() {
        out.warnings.push(format!(
            "{origin}: no statement is left after unresolvable references were removed; the function runs with no role policy"
        ));
        return Ok(out);
    }
    let doc = json!({ "Version": "2012-10-17", "Statement": kept }).to_string();
    stratus_iam::Policy::parse(&doc).map_err(|e| format!("{origin}: {e}"))?;
    out.policy = Some(doc);
    Ok(out)
}

fn refs<'a>(manifest: &Value, identity: &'a Identity) -> Refs<'a> {
    let mut arns = BTreeMap::new();
    let mut names = BTreeMap::new();
    let service = manifest["service"].as_str().unwrap_or_default();
    let stage = manifest["stage"].as_str().unwrap_or_default();
    for (id, r) in manifest["resources"]["Resources"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if r["Type"] == "AWS::SQS::Queue" {
            // Named as the CLI names the queues it asks the server to create.
            let name = r["Properties"]["QueueName"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{service}-{stage}-{id}"));
            arns.insert(
                id.clone(),
                format!(
                    "arn:aws:sqs:{}:{}:{name}",
                    identity.region, identity.account_id
                ),
            );
        }
    }
    for (key, f) in manifest["functions"].as_object().into_iter().flatten() {
        let Some(name) = f["name"].as_str() else {
            continue;
        };
        let id = format!("{}LambdaFunction", logical_name(key));
        arns.insert(id.clone(), identity.function_arn(name));
        names.insert(id, name.to_string());
    }
    Refs {
        identity,
        arns,
        names,
    }
}

/// The Serverless Framework's normalized name of a function key: first letter upper
/// case, `-` as `Dash`, `_` as `Underscore` (`hello-world` → `HelloDashworld`).
fn logical_name(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        match c {
            '-' => out.push_str("Dash"),
            '_' => out.push_str("Underscore"),
            c if i == 0 => out.extend(c.to_uppercase()),
            c => out.push(c),
        }
    }
    out
}

/// Resolves a statement's `Resource`/`NotResource`; `None` drops it.
fn resolve_statement(
    mut s: Value,
    refs: &Refs<'_>,
    at: &str,
    warnings: &mut Vec<String>,
) -> Option<Value> {
    let deny = s["Effect"] == "Deny";
    for key in ["Resource", "NotResource"] {
        let Some(v) = s.get(key).cloned() else {
            continue;
        };
        let entries = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        let mut out = Vec::new();
        for e in entries {
            match resolve(&e, refs) {
                Ok(r) => out.push(Value::String(r)),
                Err(why) => {
                    let what = format!("{at}.{key}: cannot resolve {e} ({why})");
                    match (deny, key) {
                        (false, "NotResource") => {
                            warnings.push(format!("{what}; the statement is ignored"));
                            return None;
                        }
                        (false, _) => warnings.push(format!("{what}; the entry is ignored")),
                        (true, "Resource") => {
                            warnings.push(format!("{what}; the Deny applies to every resource"));
                            out.push(Value::String("*".into()));
                        }
                        (true, _) => warnings.push(format!("{what}; the entry is ignored")),
                    }
                }
            }
        }
        if out.is_empty() {
            if key == "Resource" {
                warnings.push(format!(
                    "{at}: no resource is left; the statement is ignored"
                ));
                return None;
            }
            // A Deny whose NotResource lost every entry denies everywhere.
            if let Some(o) = s.as_object_mut() {
                o.remove("NotResource");
                o.insert("Resource".into(), json!("*"));
            }
            continue;
        }
        s[key] = Value::Array(out);
    }
    Some(s)
}

/// A resource string or a CloudFormation reference to one.
fn resolve(v: &Value, refs: &Refs<'_>) -> Result<String, String> {
    let Value::Object(o) = v else {
        return v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "not a string".into());
    };
    let (Some((k, arg)), 1) = (o.iter().next(), o.len()) else {
        return Err("not a CloudFormation reference".into());
    };
    match k.as_str() {
        "Fn::GetAtt" => {
            let (id, attr) = match arg {
                Value::Array(a) => (
                    a.first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    a.get(1)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ),
                Value::String(s) => match s.split_once('.') {
                    Some((id, attr)) => (id.to_string(), attr.to_string()),
                    None => (s.clone(), String::new()),
                },
                _ => return Err("Fn::GetAtt takes [LogicalId, Attribute]".into()),
            };
            if attr != "Arn" {
                return Err(format!("only the Arn attribute is resolved, not {attr:?}"));
            }
            refs.arns.get(&id).cloned().ok_or_else(|| {
                format!("{id} is not a queue in resources or a function of this service")
            })
        }
        "Ref" => {
            let id = arg.as_str().unwrap_or_default();
            pseudo(id, refs)
                .or_else(|| refs.names.get(id).cloned())
                .ok_or_else(|| {
                    if refs.arns.contains_key(id) {
                        format!("Ref of {id} is its URL, not its ARN: use Fn::GetAtt [{id}, Arn]")
                    } else {
                        format!("{id} is not a function of this service or a pseudo parameter")
                    }
                })
        }
        "Fn::Join" => {
            let (Some(delim), Some(Value::Array(parts))) =
                (arg.get(0).and_then(Value::as_str), arg.get(1))
            else {
                return Err("Fn::Join takes [delimiter, [parts]]".into());
            };
            let parts = parts
                .iter()
                .map(|p| resolve(p, refs))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(parts.join(delim))
        }
        "Fn::Sub" => {
            let (template, vars) = match arg {
                Value::String(t) => (t.as_str(), None),
                Value::Array(a) => (
                    a.first().and_then(Value::as_str).unwrap_or_default(),
                    a.get(1).and_then(Value::as_object),
                ),
                _ => return Err("Fn::Sub takes a string or [string, {variables}]".into()),
            };
            substitute(template, |name| {
                if let Some(v) = vars.and_then(|m| m.get(name)) {
                    return resolve(v, refs);
                }
                if let Some(p) = pseudo(name, refs) {
                    return Ok(p);
                }
                match name.strip_suffix(".Arn") {
                    Some(id) => resolve(&json!({ "Fn::GetAtt": [id, "Arn"] }), refs),
                    None => resolve(&json!({ "Ref": name }), refs),
                }
            })
        }
        other => Err(format!("{other} is not resolved by Stratus")),
    }
}

fn pseudo(name: &str, refs: &Refs<'_>) -> Option<String> {
    match name {
        "AWS::Region" => Some(refs.identity.region.clone()),
        "AWS::AccountId" => Some(refs.identity.account_id.clone()),
        "AWS::Partition" => Some("aws".into()),
        "AWS::URLSuffix" => Some("amazonaws.com".into()),
        _ => None,
    }
}

/// `${Name}` substituted by `lookup`; `${!Literal}` stays `${Literal}`.
fn substitute(
    template: &str,
    lookup: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            return Err(format!("unclosed ${{ in {template:?}"));
        };
        let name = &after[..j];
        match name.strip_prefix('!') {
            Some(lit) => {
                out.push_str("${");
                out.push_str(lit);
                out.push('}');
            }
            None => out.push_str(&lookup(name.trim())?),
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            endpoint_url: String::new(),
            gateway_url: None,
        }
    }

    fn manifest(statements: Value, resources: Value, role: Option<&str>) -> Value {
        json!({
            "service": "shop", "stage": "dev",
            "iam_statements": statements,
            "resources": { "Resources": resources },
            "functions": {
                "send-it": { "name": "shop-dev-send-it", "role": role },
                "other": { "name": "shop-dev-other" },
            },
        })
    }

    fn policy(r: &RolePolicy) -> Value {
        serde_json::from_str(r.policy.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn provider_statements_with_references_resolved() {
        let m = manifest(
            json!([
                {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": {"Fn::GetAtt": ["Jobs", "Arn"]}},
                {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": [{"Fn::GetAtt": "Named.Arn"}, "arn:aws:sqs:*:*:x"]},
                {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": [
                    {"Fn::GetAtt": ["OtherLambdaFunction", "Arn"]},
                    {"Fn::Join": [":", [{"Fn::GetAtt": ["OtherLambdaFunction", "Arn"]}, "*"]]},
                    {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${SendDashitLambdaFunction}"},
                ]},
            ]),
            json!({
                "Jobs": {"Type": "AWS::SQS::Queue"},
                "Named": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "named-q"}},
            }),
            None,
        );
        let r = role_policy(&m, &identity(), "send-it").unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let p = policy(&r);
        assert_eq!(
            p["Statement"][0]["Resource"],
            json!(["arn:aws:sqs:eu-west-1:123456789012:shop-dev-Jobs"])
        );
        assert_eq!(
            p["Statement"][1]["Resource"],
            json!([
                "arn:aws:sqs:eu-west-1:123456789012:named-q",
                "arn:aws:sqs:*:*:x"
            ])
        );
        assert_eq!(
            p["Statement"][2]["Resource"],
            json!([
                "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-other",
                "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-other:*",
                "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-send-it",
            ])
        );
        let parsed = stratus_iam::Policy::parse(r.policy.as_deref().unwrap()).unwrap();
        assert!(parsed.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:123456789012:shop-dev-Jobs"
        ));
        assert!(!parsed.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:123456789012:named-q"
        ));
    }

    #[test]
    fn unresolvable_references_never_widen_the_policy() {
        let m = manifest(
            json!([
                {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}},
                {"Effect": "Allow", "Action": "sqs:*", "Resource": ["arn:aws:sqs:*:*:a", {"Fn::ImportValue": "x"}]},
                {"Effect": "Allow", "Action": "sqs:*", "NotResource": [{"Ref": "Nope"}]},
                {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}},
            ]),
            json!({}),
            None,
        );
        let r = role_policy(&m, &identity(), "other").unwrap();
        let p = policy(&r);
        let statements = p["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2, "{p}");
        assert_eq!(statements[0]["Resource"], json!(["arn:aws:sqs:*:*:a"]));
        assert_eq!(statements[1]["Effect"], "Deny");
        assert_eq!(statements[1]["Resource"], json!(["*"]));
        assert_eq!(r.warnings.len(), 5, "{:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("provider.iam.role.statements[0].Resource: cannot resolve"),
            "{}",
            r.warnings[0]
        );
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("statements[3].Resource") && w.contains("every resource")));
    }

    #[test]
    fn a_function_role_from_resources() {
        let resources = json!({
            "WorkerRole": {"Type": "AWS::IAM::Role", "Properties": {
                "ManagedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                "Policies": [
                    {"PolicyName": "a", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]}},
                    {"PolicyName": "b", "PolicyDocument": {"Statement":
                        {"Effect": "Deny", "Action": "lambda:InvokeFunction", "Resource": {"Fn::GetAtt": ["OtherLambdaFunction", "Arn"]}}}},
                ]}},
        });
        let m = manifest(
            json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
            resources,
            Some("WorkerRole"),
        );
        let r = role_policy(&m, &identity(), "send-it").unwrap();
        let p = stratus_iam::Policy::parse(r.policy.as_deref().unwrap()).unwrap();
        assert!(p.allows(
            "lambda:InvokeFunction",
            "arn:aws:lambda:eu-west-1:123456789012:function:x"
        ));
        assert!(!p.allows(
            "lambda:InvokeFunction",
            "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-other"
        ));
        assert!(
            !p.allows("sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:q"),
            "the provider statements do not apply"
        );
        assert!(
            r.warnings[0].contains("ManagedPolicyArns"),
            "{:?}",
            r.warnings
        );
        // The same role named by Fn::GetAtt.
        let mut by_ref = m.clone();
        by_ref["functions"]["send-it"]["role"] = json!({"Fn::GetAtt": ["WorkerRole", "Arn"]});
        assert_eq!(
            role_policy(&by_ref, &identity(), "send-it").unwrap().policy,
            r.policy
        );
        // The other function keeps the provider's statements.
        let other = role_policy(&m, &identity(), "other").unwrap();
        assert!(stratus_iam::Policy::parse(other.policy.as_deref().unwrap())
            .unwrap()
            .allows("sqs:SendMessage", "x"));
    }

    #[test]
    fn roles_stratus_cannot_see_and_bad_ones() {
        let m = manifest(
            json!([]),
            json!({}),
            Some("arn:aws:iam::123456789012:role/existing"),
        );
        let r = role_policy(&m, &identity(), "send-it").unwrap();
        assert_eq!(r.policy, None);
        assert!(
            r.warnings[0].starts_with(
                "functions.send-it.role: Stratus cannot read the IAM role \"arn:aws:iam::123456789012:role/existing\""
            ),
            "{:?}",
            r.warnings
        );
        let m = manifest(
            json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
            json!({"Missing": {"Type": "AWS::SQS::Queue"}}),
            Some("Missing"),
        );
        let r = role_policy(&m, &identity(), "send-it").unwrap();
        // The provider statements do not apply to a function with its own role.
        assert_eq!(r.policy, None);
        assert!(
            r.warnings[0].contains("not an AWS::IAM::Role in resources"),
            "{:?}",
            r.warnings
        );
        let m = manifest(
            json!([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]),
            json!({}),
            None,
        );
        let e = role_policy(&m, &identity(), "other").unwrap_err();
        assert_eq!(
            e.split(" (").next().unwrap(),
            "provider.iam.role.statements: Statement[0]: Condition is not supported by Stratus"
        );
        // No statements: no policy.
        let m = manifest(json!([]), json!({}), None);
        assert_eq!(
            role_policy(&m, &identity(), "other").unwrap(),
            RolePolicy::default()
        );
    }

    /// The manifest as the CLI sends it (`serde_json::to_value(&Service)`), from real
    /// `serverless.yml` text: the field names this module reads are the model's.
    #[test]
    fn from_a_real_serverless_yml() {
        let yml = r#"
service: shop
provider:
  name: aws
  runtime: nodejs20.x
  iam:
    role:
      statements:
        - Effect: Allow
          Action: sqs:SendMessage
          Resource: !GetAtt Jobs.Arn
  iamRoleStatements:
    - Effect: Allow
      Action: lambda:InvokeFunction
      Resource: !GetAtt WorkerLambdaFunction.Arn
functions:
  api:
    handler: handler.api
  worker:
    handler: handler.worker
    role: WorkerRole
resources:
  Resources:
    Jobs:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: jobs-${sls:stage}
    WorkerRole:
      Type: AWS::IAM::Role
      Properties:
        Policies:
          - PolicyName: worker
            PolicyDocument:
              Statement:
                - Effect: Allow
                  Action: sqs:ReceiveMessage
                  Resource: !Sub "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:jobs-dev"
"#;
        let (service, _) = stratus_manifest::load_str(
            yml,
            std::sync::Arc::from("serverless.yml"),
            false,
            std::path::Path::new("."),
            &stratus_manifest::Options::default(),
        )
        .unwrap();
        let manifest = serde_json::to_value(&service).unwrap();
        let api = role_policy(&manifest, &identity(), "api").unwrap();
        assert!(api.warnings.is_empty(), "{:?}", api.warnings);
        let api = stratus_iam::Policy::parse(api.policy.as_deref().unwrap()).unwrap();
        assert!(api.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:123456789012:jobs-dev"
        ));
        assert!(api.allows(
            "lambda:InvokeFunction",
            "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-worker"
        ));
        let worker = role_policy(&manifest, &identity(), "worker").unwrap();
        let worker = stratus_iam::Policy::parse(worker.policy.as_deref().unwrap()).unwrap();
        assert!(worker.allows(
            "sqs:ReceiveMessage",
            "arn:aws:sqs:eu-west-1:123456789012:jobs-dev"
        ));
        assert!(!worker.allows(
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:123456789012:jobs-dev"
        ));
    }

    #[test]
    fn logical_names() {
        assert_eq!(logical_name("hello"), "Hello");
        assert_eq!(logical_name("send-it"), "SendDashit");
        assert_eq!(logical_name("a_b"), "AUnderscoreb");
    }
}
