//! `custom.stratus.egress`: which functions may reach the network outside their
//! environment. Every environment otherwise sees only its own loopback.
//!
//! It lives under `custom:` because the Serverless Framework v3 accepts anything
//! there, so the same file still deploys to AWS (where the setting means nothing)
//! and `serverless print` reads it without a warning.

use crate::spanned::{Node, Value};

use super::reader::{string, Checker, Fields};
use super::shared::Located;

/// What `vpc:` means to Stratus: nothing that grants egress. On AWS a function
/// attached to a VPC reaches only that VPC, and the internet only through a NAT
/// gateway the manifest cannot show, so mapping `vpc:` to egress would widen it.
pub(super) const VPC_NOTE: &str = "accepted; it gives no network access outside the environment (on AWS a function in a VPC reaches the internet only through a NAT gateway): list the functions that need it in `custom.stratus.egress`";

/// `custom.stratus.egress: true | false | [functionKey, …]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EgressConfig {
    /// Absent or `false`: no function has egress.
    #[default]
    None,
    /// `true`: every function of the service has egress.
    All,
    /// The functions listed (by their key under `functions:`).
    Functions(Vec<Located<String>>),
}

impl EgressConfig {
    /// Whether the function `key` has egress.
    pub fn allows(&self, key: &str) -> bool {
        match self {
            EgressConfig::None => false,
            EgressConfig::All => true,
            EgressConfig::Functions(keys) => keys.iter().any(|k| k.value == key),
        }
    }
}

/// Reads `custom.stratus` from `custom` (free-form: only the `stratus` key is
/// Stratus's, and only when it is there).
pub(super) fn egress(c: &mut Checker, custom: &Node) -> EgressConfig {
    let Some(stratus) = custom.get("stratus") else {
        return EgressConfig::None;
    };
    let Some(mut f) = Fields::new(
        c,
        stratus,
        "custom.stratus",
        "a map of Stratus settings such as `egress`",
    ) else {
        return EgressConfig::None;
    };
    let out = match f.get("egress") {
        None => EgressConfig::None,
        Some(n) => read(c, n),
    };
    f.finish(c, &[]);
    out
}

fn read(c: &mut Checker, node: &Node) -> EgressConfig {
    const PATH: &str = "custom.stratus.egress";
    const WHAT: &str = "true, false or a list of function keys";
    match &node.value {
        Value::Bool(true) => EgressConfig::All,
        Value::Bool(false) | Value::Null => EgressConfig::None,
        Value::String(s) if s == "true" => EgressConfig::All,
        Value::String(s) if s == "false" => EgressConfig::None,
        Value::Seq(items) => {
            let mut keys = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(key) = string(c, item, &format!("{PATH}[{i}]")) {
                    keys.push(Located {
                        value: key,
                        span: item.span.clone(),
                    });
                }
            }
            EgressConfig::Functions(keys)
        }
        _ => {
            c.expected(node, PATH, WHAT);
            EgressConfig::None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use crate::{load_str, ManifestError, Options, Service};

    const BASE: &str = "service: svc\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  a:\n    handler: h.a\n  b:\n    handler: h.b\n";

    fn load(extra: &str) -> Result<(Service, Vec<crate::Diagnostic>), ManifestError> {
        let opts = Options {
            instance_id: Some("id".into()),
            ..Options::default()
        };
        load_str(
            &format!("{BASE}{extra}"),
            "serverless.yml".into(),
            false,
            Path::new("."),
            &opts,
        )
    }

    fn egress(s: &Service) -> (bool, bool) {
        (s.functions["a"].egress, s.functions["b"].egress)
    }

    #[test]
    fn no_function_has_egress_unless_asked() {
        assert_eq!(egress(&load("").unwrap().0), (false, false));
        let custom = "custom:\n  stratus:\n    egress: false\n";
        assert_eq!(egress(&load(custom).unwrap().0), (false, false));
    }

    #[test]
    fn true_is_every_function_and_a_list_names_some() {
        let all = "custom:\n  stratus:\n    egress: true\n";
        assert_eq!(egress(&load(all).unwrap().0), (true, true));
        let some = "custom:\n  stratus:\n    egress: [b]\n";
        assert_eq!(egress(&load(some).unwrap().0), (false, true));
    }

    #[test]
    fn an_unknown_function_or_a_wrong_type_is_an_error_with_its_position() {
        let e = load("custom:\n  stratus:\n    egress: [b, nope]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("serverless.yml:12:17: custom.stratus.egress[1]: no function `nope` under `functions:`"),
            "{e}"
        );
        let e = load("custom:\n  stratus:\n    egress: 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("serverless.yml:12:13: custom.stratus.egress"),
            "{e}"
        );
        assert!(e.contains("true, false or a list of function keys"), "{e}");
    }

    #[test]
    fn vpc_alone_grants_no_egress_and_says_so() {
        let (s, notes) = load("    vpc:\n      subnetIds: [s-1]\n").unwrap();
        assert_eq!(egress(&s), (false, false));
        let note = notes
            .iter()
            .find(|d| d.path == "functions.b.vpc")
            .expect("a note on vpc");
        assert!(note.message.contains("custom.stratus.egress"), "{note:?}");
    }

    #[test]
    fn other_custom_keys_stay_free_form_but_custom_stratus_is_checked() {
        let (s, notes) = load("custom:\n  anything: [1, 2]\n").unwrap();
        assert_eq!(egress(&s), (false, false));
        assert!(notes.is_empty(), "{notes:?}");
        let (_, notes) = load("custom:\n  stratus:\n    egres: true\n").unwrap();
        assert!(
            notes.iter().any(|d| d.path == "custom.stratus.egres"),
            "{notes:?}"
        );
    }
}
