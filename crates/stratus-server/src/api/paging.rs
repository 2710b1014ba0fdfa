//! `MaxItems` and `Marker` of the list operations (ListFunctions,
//! ListVersionsByFunction, ListAliases, ListEventSourceMappings): validated as
//! Lambda does, so `MaxItems=-1`, `0`, `10001`, `2^63` or `12abc` is a
//! `ValidationException`, never a silently wrapped or ignored value.
//!
//! Both arrive as query strings and are read as text here, so a malformed number gets
//! the API's error, not the HTTP layer's. A marker is opaque to clients: ours is the
//! base64 of the position of the next item.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// The largest `MaxItems` Lambda's list operations accept.
const MAX_ITEMS: usize = 10_000;

/// `?MaxItems=&Marker=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    #[serde(rename = "MaxItems")]
    max_items: Option<String>,
    #[serde(rename = "Marker")]
    marker: Option<String>,
}

impl PageQuery {
    /// The page of `items` this query asks for, and the marker of the next page when
    /// one remains. Without `MaxItems`, every item from the marker on.
    pub(super) fn page<T>(&self, items: Vec<T>) -> Result<(Vec<T>, Option<String>), ApiError> {
        let max = match &self.max_items {
            None => None,
            Some(raw) => Some(
                raw.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_ITEMS).contains(n))
                    .ok_or_else(|| {
                        ApiError::validation(
                            raw,
                            "maxItems",
                            "Member must have value less than or equal to 10000 and greater than or equal to 1",
                        )
                    })?,
            ),
        };
        let start = match self.marker.as_deref().filter(|m| !m.is_empty()) {
            None => 0,
            Some(m) => B64
                .decode(m)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| ApiError::invalid(format!("Invalid Marker: {m}")))?,
        };
        let total = items.len();
        let end = max.map_or(total, |m| start.saturating_add(m).min(total));
        let page: Vec<T> = items
            .into_iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect();
        let next = (end < total).then(|| B64.encode(end.to_string()));
        Ok((page, next))
    }
}

/// `{key: page}` plus `NextMarker` when more remain.
pub(super) fn listing<T: serde::Serialize>(key: &str, page: Vec<T>, next: Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(key.to_string(), serde_json::json!(page));
    if let Some(m) = next {
        out.insert("NextMarker".into(), m.into());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn q(max: Option<&str>, marker: Option<&str>) -> PageQuery {
        PageQuery {
            max_items: max.map(str::to_string),
            marker: marker.map(str::to_string),
        }
    }

    #[test]
    fn pages_follow_markers_to_the_end() {
        let items: Vec<u32> = (0..5).collect();
        let (p1, m1) = q(Some("2"), None).page(items.clone()).unwrap();
        assert_eq!(p1, vec![0, 1]);
        let (p2, m2) = q(Some("2"), m1.as_deref()).page(items.clone()).unwrap();
        assert_eq!(p2, vec![2, 3]);
        let (p3, m3) = q(Some("2"), m2.as_deref()).page(items.clone()).unwrap();
        assert_eq!((p3, m3), (vec![4], None));
        assert_eq!(q(None, None).page(items.clone()).unwrap(), (items, None));
    }

    #[test]
    fn hostile_max_items_and_markers_are_refused() {
        for bad in [
            "-1",
            "0",
            "10001",
            "2147483648",
            "4294967296",
            "9223372036854775808",
            "18446744073709551616",
            "1e400",
            "1.5",
            "12abc",
            "",
        ] {
            let e = q(Some(bad), None).page(vec![1]).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation, "MaxItems={bad}");
        }
        for bad in ["%%%", "bm90IGEgbnVtYmVy", "LTE="] {
            let e = q(None, Some(bad)).page(vec![1]).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameterValue, "Marker={bad}");
        }
        // A marker far past the end (an index near usize::MAX) is an empty page.
        let far = B64.encode(usize::MAX.to_string());
        assert_eq!(
            q(Some("10"), Some(&far)).page(vec![1, 2]).unwrap(),
            (vec![], None)
        );
    }
}
