//! Function tags: TagResource, UntagResource, ListTags and the tags a deployment
//! sets, with Lambda's limits on keys, values and count.

use std::collections::BTreeMap;

use super::{parse_tag_arn, Registry};
use crate::error::ApiError;

/// Most tags a function may have, as Lambda.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;

/// Checks one tag key: 1–128 characters, not starting with the reserved `aws:`.
pub fn check_tag_key(key: &str) -> Result<(), ApiError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_TAG_KEY {
        return Err(ApiError::validation(
            key,
            "tags",
            &format!("Map keys must satisfy constraint: [Member must have length less than or equal to {MAX_TAG_KEY}, Member must have length greater than or equal to 1] (this key has {n} characters)"),
        ));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(ApiError::invalid(format!(
            "Tag key '{key}' is not allowed: keys starting with 'aws:' are reserved for AWS use"
        )));
    }
    Ok(())
}

/// Checks tags as Lambda does: keys 1–128 characters and not `aws:…`, values at most
/// 256 characters. The count is checked on the function's resulting set
/// ([`check_tag_count`]).
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (k, v) in tags {
        check_tag_key(k)?;
        let n = v.chars().count();
        if n > MAX_TAG_VALUE {
            return Err(ApiError::validation(
                v,
                &format!("tags.{k}"),
                &format!("Map values must satisfy constraint: [Member must have length less than or equal to {MAX_TAG_VALUE}] (this value has {n} characters)"),
            ));
        }
    }
    Ok(())
}

/// A function has at most [`MAX_TAGS`] tags.
pub fn check_tag_count(function_arn: &str, n: usize) -> Result<(), ApiError> {
    if n > MAX_TAGS {
        return Err(ApiError::invalid(format!(
            "Too many tags: {function_arn} would have {n} tags; a function can have at most {MAX_TAGS}"
        )));
    }
    Ok(())
}

impl Registry {
    /// ListTags.
    pub fn list_tags(&self, resource: &str) -> Result<BTreeMap<String, String>, ApiError> {
        let name = self.tag_target(resource)?;
        self.read(&name, |e| e.tags.clone())
    }

    /// TagResource: adds `tags` to the function's, replacing values of keys it has.
    pub fn tag_resource(
        &self,
        resource: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let name = self.tag_target(resource)?;
        check_tags(&tags)?;
        self.change_tags(&name, |t| t.extend(tags))
    }

    /// UntagResource: removes `keys` (keys the function lacks are ignored).
    pub fn untag_resource(&self, resource: &str, keys: &[String]) -> Result<(), ApiError> {
        let name = self.tag_target(resource)?;
        if keys.is_empty() {
            return Err(ApiError::validation(
                "null",
                "tagKeys",
                "Member must not be null",
            ));
        }
        for k in keys {
            check_tag_key(k)?;
        }
        self.change_tags(&name, |t| t.retain(|k, _| !keys.contains(k)))
    }

    /// Makes function `name`'s tags exactly `tags` (deployments). Returns whether
    /// they changed.
    pub fn set_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<bool, ApiError> {
        check_tags(&tags)?;
        let mut changed = false;
        self.change_tags(name, |t| {
            changed = *t != tags;
            *t = tags;
        })?;
        Ok(changed)
    }

    /// Applies `change` to function `name`'s tags, checks the count, writes through.
    fn change_tags(
        &self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<(), ApiError> {
        let (_writer, mut entry) = self.begin(name)?;
        let mut tags = entry.tags.clone();
        change(&mut tags);
        if tags == entry.tags {
            return Ok(());
        }
        check_tag_count(&entry.latest.config.function_arn, tags.len())?;
        self.store.put_tags(name, &tags)?;
        entry.tags = tags;
        self.install(name, entry);
        Ok(())
    }

    /// The function a tagging ARN names, which must be this server's and unqualified.
    fn tag_target(&self, resource: &str) -> Result<String, ApiError> {
        let arn = parse_tag_arn(resource)?;
        if arn.qualifier.is_some() {
            return Err(ApiError::invalid(format!(
                "Tags apply to functions, not to versions or aliases: use the unqualified ARN {} instead of {resource}",
                self.identity.function_arn(&arn.name)
            )));
        }
        if arn.region != self.identity.region || arn.account != self.identity.account_id {
            return Err(ApiError::not_found(format!(
                "Function not found: {resource} (this server's functions are in region {} and account {})",
                self.identity.region, self.identity.account_id
            )));
        }
        Ok(arn.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn tag_validation() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let long_key = "k".repeat(128);
        let long_value = "v".repeat(256);
        assert!(check_tags(&tags(&[
            ("team", ""),
            (&long_key, &long_value),
            ("awsome", "x"),
            ("ünï", "çödé"),
        ]))
        .is_ok());
        // Lengths count characters, not bytes.
        assert!(check_tags(&tags(&[(&"é".repeat(128), &"é".repeat(256))])).is_ok());

        let e = check_tags(&tags(&[(&"k".repeat(129), "v")])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(
            e.message.contains("at 'tags'") && e.message.contains("less than or equal to 128"),
            "{}",
            e.message
        );
        let e = check_tags(&tags(&[("", "v")])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(
            e.message.contains("greater than or equal to 1"),
            "{}",
            e.message
        );

        let e = check_tags(&tags(&[("team", &"v".repeat(257))])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(
            e.message.contains("at 'tags.team'") && e.message.contains("less than or equal to 256"),
            "{}",
            e.message
        );

        for reserved in ["aws:cloudformation:stack-name", "AWS:x", "aws:"] {
            let e = check_tags(&tags(&[(reserved, "v")])).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameterValue, "{reserved}");
            assert!(e.message.contains("reserved"), "{}", e.message);
            assert!(e.message.contains(reserved), "{}", e.message);
        }

        assert!(check_tag_count("arn:f", 50).is_ok());
        let e = check_tag_count("arn:f", 51).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameterValue);
        assert!(
            e.message.contains("51 tags") && e.message.contains("at most 50"),
            "{}",
            e.message
        );
    }
}
