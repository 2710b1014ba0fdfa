//! Names and ARNs: this server's [`Identity`], every FunctionName form Lambda
//! accepts, and the ARNs of the tagging operations. The character rules themselves
//! are `stratus-rules`'.

use crate::error::ApiError;

/// Where and as whom this server runs.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The region in every ARN.
    pub region: String,
    /// The account id in every ARN.
    pub account_id: String,
    /// `AWS_ENDPOINT_URL` given to function code.
    pub endpoint_url: String,
    /// The HTTP gateway's base URL, when it runs.
    pub gateway_url: Option<String>,
}

impl Identity {
    /// `arn:aws:lambda:{region}:{account}:function:{name}`.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        )
    }
}

const NAME_PATTERN: &str = "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/// Splits every FunctionName form Lambda accepts (`name`, `name:qualifier`,
/// `account:function:name[:qualifier]`, full ARN) into name and qualifier.
pub fn parse_function_ref(raw: &str) -> Result<(String, Option<String>), ApiError> {
    let bad = || ApiError::validation(raw, "functionName", NAME_PATTERN);
    if raw.is_empty() || raw.len() > 170 {
        return Err(bad());
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, q] => (*name, Some(*q)),
        ["arn", _, "lambda", _region, _account, "function", name] => (*name, None),
        ["arn", _, "lambda", _region, _account, "function", name, q] => (*name, Some(*q)),
        _ => return Err(bad()),
    };
    if !stratus_rules::is_function_name(name)
        || qualifier.is_some_and(|q| !stratus_rules::is_qualifier(q))
    {
        return Err(bad());
    }
    Ok((name.to_string(), qualifier.map(str::to_string)))
}

/// Tagging ARNs, as Lambda's pattern has them.
const TAG_ARN_PATTERN: &str = "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}(-gov)?-[a-z]+-\\d{1}:\\d{12}:function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/// A function ARN as the tagging operations take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagArn {
    /// Region.
    pub region: String,
    /// Account id.
    pub account: String,
    /// Function name.
    pub name: String,
    /// Version or alias, when qualified.
    pub qualifier: Option<String>,
}

/// Parses the ARN of TagResource, UntagResource and ListTags: a full function ARN
/// (Lambda's pattern), possibly qualified. Anything else is a `ValidationException`.
pub fn parse_tag_arn(raw: &str) -> Result<TagArn, ApiError> {
    let bad = || ApiError::validation(raw, "resource", TAG_ARN_PATTERN);
    let parts: Vec<&str> = raw.split(':').collect();
    let (partition, region, account, name, qualifier) = match parts.as_slice() {
        ["arn", p, "lambda", r, a, "function", n] => (*p, *r, *a, *n, None),
        ["arn", p, "lambda", r, a, "function", n, q] => (*p, *r, *a, *n, Some(*q)),
        _ => return Err(bad()),
    };
    let partition_ok = partition.is_empty()
        || partition
            .strip_prefix("aws")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'));
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = stratus_rules::is_function_name(name);
    let qualifier_ok = qualifier.is_none_or(stratus_rules::is_qualifier);
    if !(partition_ok && stratus_rules::is_region(region) && account_ok && name_ok && qualifier_ok)
    {
        return Err(bad());
    }
    Ok(TagArn {
        region: region.to_string(),
        account: account.to_string(),
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn function_name_forms() {
        let ok = |s: &str| parse_function_ref(s).unwrap();
        assert_eq!(ok("hello"), ("hello".into(), None));
        assert_eq!(ok("hello:prod"), ("hello".into(), Some("prod".into())));
        assert_eq!(ok("123456789012:function:hello"), ("hello".into(), None));
        assert_eq!(
            ok("123456789012:function:hello:7"),
            ("hello".into(), Some("7".into()))
        );
        assert_eq!(
            ok("arn:aws:lambda:us-east-1:123456789012:function:hello"),
            ("hello".into(), None)
        );
        assert_eq!(
            ok("arn:aws:lambda:us-east-1:123456789012:function:hello:$LATEST"),
            ("hello".into(), Some("$LATEST".into()))
        );
        for bad in [
            "",
            "has space",
            "a:b:c",
            "x".repeat(65).as_str(),
            "arn:aws:lambda:us-east-1:1:layer:x",
            "f:",
        ] {
            let e = parse_function_ref(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation, "{bad}");
            assert!(e.message.contains("at 'functionName'"), "{}", e.message);
        }
    }

    #[test]
    fn tag_arns() {
        let arn = parse_tag_arn("arn:aws:lambda:us-east-1:000000000000:function:hello").unwrap();
        assert_eq!(
            arn,
            TagArn {
                region: "us-east-1".into(),
                account: "000000000000".into(),
                name: "hello".into(),
                qualifier: None,
            }
        );
        let q =
            parse_tag_arn("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST")
                .unwrap();
        assert_eq!(q.qualifier.as_deref(), Some("$LATEST"));
        assert_eq!(q.region, "us-gov-west-1");
        for bad in [
            "",
            "hello",
            "000000000000:function:hello",
            "arn:aws:lambda:us-east-1:000000000000:function:",
            "arn:aws:lambda:us-east-1:0000:function:hello",
            "arn:aws:lambda:useast1:000000000000:function:hello",
            "arn:aws:lambda:us-east-1:000000000000:layer:hello",
            "arn:aws:s3:us-east-1:000000000000:function:hello",
            "arn:gcp:lambda:us-east-1:000000000000:function:hello",
            "arn:aws:lambda:us-east-1:000000000000:function:he llo",
            "arn:aws:lambda:us-east-1:000000000000:function:hello:1:2",
        ] {
            let e = parse_tag_arn(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation, "{bad}");
            assert!(
                e.message.contains(&format!("Value '{bad}' at 'resource'"))
                    && e.message.contains("regular expression pattern: arn:"),
                "{}",
                e.message
            );
        }
    }
}
