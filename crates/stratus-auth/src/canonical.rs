//! The canonical request of SigV4 and the signing-key derivation, as AWS defines them
//! for every service but S3: the path is normalized (dot segments and empty segments
//! removed) and then URI-encoded once more, query parameters are decoded, re-encoded
//! and sorted, header values are trimmed with inner runs of spaces collapsed.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// A derived signing key (`kSigning`).
pub type SigningKey = [u8; 32];

/// Percent-encodes every byte outside RFC 3986's unreserved set
/// (`A-Z a-z 0-9 - _ . ~`), upper-case hex; `/` too unless `keep_slash`.
pub fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &b in input {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// RFC 3986 §5.2.4 dot-segment removal, plus the removal of empty segments (`//`)
/// that AWS services apply; a trailing `/` is kept.
pub fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(path.len());
    if path.starts_with('/') {
        s.push('/');
    }
    s.push_str(&out.join("/"));
    if path.ends_with('/') && !out.is_empty() {
        s.push('/');
    }
    s
}

/// The canonical URI of a request path as it was sent (still percent-encoded): it is
/// normalized and encoded again, so an encoded `:` (`%3A`) signs as `%253A`.
pub fn canonical_uri(raw_path: &str) -> String {
    uri_encode(normalize_path(raw_path).as_bytes(), true)
}

/// The canonical query string of a raw query: each `name=value` decoded, encoded
/// with [`uri_encode`], sorted by name then value; a parameter named `exclude`
/// (`X-Amz-Signature` for presigned URLs) is left out.
pub fn canonical_query(raw_query: Option<&str>, exclude: Option<&str>) -> String {
    let Some(raw) = raw_query else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in raw.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k: Vec<u8> = percent_encoding::percent_decode_str(k).collect();
        if exclude.is_some_and(|x| x.as_bytes() == k.as_slice()) {
            continue;
        }
        let v: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
        pairs.push((uri_encode(&k, false), uri_encode(&v, false)));
    }
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A header value as SigV4 signs it: surrounding whitespace removed and every inner
/// run of whitespace one space. Bytes that are not UTF-8 are kept as they are.
pub fn trim_value(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for word in value
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    out
}

/// The canonical headers block (each `name:value\n`) of the `signed` header names, in
/// the order given; several values of one header are joined with `,`.
pub fn canonical_headers(headers: &HeaderMap, signed: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in signed {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, v) in headers.get_all(name.as_str()).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&trim_value(v.as_bytes()));
        }
        out.push(b'\n');
    }
    out
}

/// The whole canonical request: method, URI, query, headers, signed header names and
/// payload hash, one per line.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    canonical_query: &str,
    headers: &HeaderMap,
    signed: &[String],
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(raw_path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&canonical_headers(headers, signed));
    out.push(b'\n');
    out.extend_from_slice(signed.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// The credential scope `date/region/service/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign of a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{}\n{amz_date}\n{scope}\n{}",
        crate::ALGORITHM,
        hex_sha256(canonical_request)
    )
}

/// Lower-case hex SHA-256 of `data` (payload hashes, canonical request hashes).
pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// Derives `kSigning` from a secret and a scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> SigningKey {
    let mut k = Vec::with_capacity(secret.len() + 4);
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&k, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The signature (lower-case hex) of a string to sign.
pub fn signature(key: &SigningKey, string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Whether `sig` is the signature of `string_to_sign`, compared in constant time.
pub fn signature_matches(key: &SigningKey, string_to_sign: &str, sig: &[u8; 32]) -> bool {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(string_to_sign.as_bytes());
            m.verify_slice(sig).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_then_encoded_again() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("//a//b/"), "/a/b/");
        assert_eq!(canonical_uri("/.."), "/");
        assert_eq!(
            canonical_uri("/2015-03-31/functions/arn%3Aaws%3Alambda/invocations"),
            "/2015-03-31/functions/arn%253Aaws%253Alambda/invocations"
        );
        assert_eq!(canonical_uri("/ä b"), "/%C3%A4%20b");
    }

    #[test]
    fn query_is_decoded_encoded_and_sorted() {
        assert_eq!(canonical_query(None, None), "");
        assert_eq!(
            canonical_query(Some("b=2&a=1&a=0&c"), None),
            "a=0&a=1&b=2&c="
        );
        assert_eq!(
            canonical_query(Some("Qualifier=%24LATEST&x=a b"), None),
            "Qualifier=%24LATEST&x=a%20b"
        );
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=abc&z=%2F"), Some("X-Amz-Signature")),
            "z=%2F"
        );
    }

    #[test]
    fn header_values_are_trimmed() {
        assert_eq!(trim_value(b"  a   b\t c  "), b"a b c");
        assert_eq!(trim_value(b""), b"");
        let mut h = HeaderMap::new();
        h.append("my-header1", "value1".parse().unwrap());
        h.append("my-header1", " value2  x".parse().unwrap());
        h.insert("host", "example.amazonaws.com".parse().unwrap());
        assert_eq!(
            canonical_headers(&h, &["host".into(), "my-header1".into()]),
            b"host:example.amazonaws.com\nmy-header1:value1,value2 x\n"
        );
    }

    /// The example of AWS's SigV4 documentation: the derived key and signature of an
    /// IAM ListUsers request (published values).
    #[test]
    fn aws_documented_example() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        h.insert("host", "iam.amazonaws.com".parse().unwrap());
        h.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let signed: Vec<String> = ["content-type", "host", "x-amz-date"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let q = canonical_query(Some("Action=ListUsers&Version=2010-05-08"), None);
        let cr = canonical_request("GET", "/", &q, &h, &signed, crate::EMPTY_SHA256);
        assert_eq!(
            hex_sha256(&cr),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let scope = scope("20150830", "us-east-1", "iam");
        let sts = string_to_sign("20150830T123600Z", &scope, &cr);
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            signature(&key, &sts),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// Cases of AWS's published SigV4 test suite (credentials `AKIDEXAMPLE`, service
    /// `service`, 2015-08-30T12:36:00Z): request → expected signature.
    #[test]
    fn aws_test_suite_vectors() {
        const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        const UNRESERVED: &str =
            "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        let sign = |path: &str, query: Option<&str>, extra: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            h.insert("host", "example.amazonaws.com".parse().unwrap());
            h.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
            for (k, v) in extra {
                h.append(*k, v.parse().unwrap());
            }
            let mut signed: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
            signed.sort();
            let cr = canonical_request(
                "GET",
                path,
                &canonical_query(query, None),
                &h,
                &signed,
                crate::EMPTY_SHA256,
            );
            let sts = string_to_sign(
                "20150830T123600Z",
                &scope("20150830", "us-east-1", "service"),
                &cr,
            );
            signature(&key, &sts)
        };
        let q = format!("{UNRESERVED}={UNRESERVED}");
        let p = format!("/{UNRESERVED}");
        let cases: &[(&str, String)] = &[
            ("get-vanilla", sign("/", None, &[])),
            (
                "get-vanilla-query-order-key-case",
                sign("/", Some("Param2=value2&Param1=value1"), &[]),
            ),
            ("get-vanilla-query-unreserved", sign("/", Some(&q), &[])),
            (
                "get-vanilla-utf8-query",
                sign("/", Some("%E1%88%B4=bar"), &[]),
            ),
            (
                "get-vanilla-empty-query-key",
                sign("/", Some("Param1=value1"), &[]),
            ),
            ("get-unreserved", sign(&p, None, &[])),
            ("get-utf8", sign("/\u{1234}", None, &[])),
            ("get-space", sign("/example space/", None, &[])),
            (
                "get-header-key-duplicate",
                sign(
                    "/",
                    None,
                    &[
                        ("my-header1", "value2"),
                        ("my-header1", "value2"),
                        ("my-header1", "value1"),
                    ],
                ),
            ),
        ];
        let expected = [
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        ];
        for ((name, got), want) in cases.iter().zip(expected) {
            assert_eq!(got, want, "{name}");
        }
    }
}
