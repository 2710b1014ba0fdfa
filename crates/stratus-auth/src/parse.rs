//! What a request presents as its signature, in either SigV4 form:
//!
//! - header: `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//!   Signature=…` with `X-Amz-Date` (and `X-Amz-Security-Token` for session
//!   credentials);
//! - query string (presigned): `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
//!   `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature` and
//!   `X-Amz-Security-Token`.
//!
//! Everything here reads untrusted text: no indexing that can panic, no allocation
//! larger than the input.

use http::HeaderMap;
use time::PrimitiveDateTime;

use crate::verify::AuthError;

/// Which form a signature came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The `Authorization` header.
    Header,
    /// Query-string parameters (a presigned URL).
    Query,
}

/// The credential scope `AKID/date/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key id.
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    /// The region signed for.
    pub region: String,
    /// The service signed for (`lambda`, `sqs`, …).
    pub service: String,
}

impl Credential {
    /// The scope string without the key id.
    pub fn scope(&self) -> String {
        crate::canonical::scope(&self.date, &self.region, &self.service)
    }
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `Credential=`.
    pub credential: Credential,
    /// `SignedHeaders=`, lower-case names in the order given.
    pub signed_headers: Vec<String>,
    /// `Signature=`, decoded.
    pub signature: [u8; 32],
}

/// A signature a request presents, parsed but not yet verified.
#[derive(Debug, Clone)]
pub struct Presented {
    /// Header or query form.
    pub form: Form,
    /// Key id and scope.
    pub credential: Credential,
    /// Names of the signed headers.
    pub signed_headers: Vec<String>,
    /// The signature.
    pub signature: [u8; 32],
    /// `X-Amz-Date` as sent (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// `X-Amz-Date` parsed (UTC).
    pub time: time::OffsetDateTime,
    /// `X-Amz-Security-Token`, for session credentials.
    pub security_token: Option<String>,
    /// `X-Amz-Expires` (seconds), presigned form only.
    pub expires: Option<u64>,
}

fn incomplete(msg: impl Into<String>) -> AuthError {
    AuthError::Incomplete(msg.into())
}

/// Parses an `Authorization` header value. Never panics, whatever `value` holds.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let value = value.trim();
    let (alg, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((a, r)) => (a, r),
        None => (value, ""),
    };
    if alg != crate::ALGORITHM {
        return Err(incomplete(format!(
            "Authorization header uses an unsupported algorithm '{}'; only {} is accepted.",
            truncate(alg),
            crate::ALGORITHM
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header has a malformed component '{}' (expected Name=Value).",
                truncate(part)
            )));
        };
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            other => {
                return Err(incomplete(format!(
                    "Authorization header has an unknown component '{}'.",
                    truncate(other)
                )))
            }
        };
        if slot.replace(v.trim()).is_some() {
            return Err(incomplete(format!(
                "Authorization header has '{}' twice.",
                k.trim()
            )));
        }
    }
    let mut missing = String::new();
    for (name, v) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed),
    ] {
        if v.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    match (credential, signed, signature) {
        (Some(c), Some(h), Some(s)) => Ok(Authorization {
            credential: parse_credential(c)?,
            signed_headers: parse_signed_headers(h)?,
            signature: parse_signature(s)?,
        }),
        _ => Err(incomplete(format!(
            "{}Authorization={}",
            missing,
            truncate(value)
        ))),
    }
}

/// Parses `AKID/YYYYMMDD/region/service/aws4_request`.
pub fn parse_credential(s: &str) -> Result<Credential, AuthError> {
    let parts: Vec<&str> = s.split('/').collect();
    let [key, date, region, service, term] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential '{}' must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request.",
            truncate(s)
        )));
    };
    if *term != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            truncate(term)
        )));
    }
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(incomplete("Credential has a malformed access key id."));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(format!(
            "Credential date '{}' must be YYYYMMDD.",
            truncate(date)
        )));
    }
    Ok(Credential {
        access_key_id: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

fn parse_signed_headers(s: &str) -> Result<Vec<String>, AuthError> {
    let names: Vec<String> = s.split(';').map(str::to_string).collect();
    let valid = |n: &String| {
        !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            })
    };
    if names.is_empty() || !names.iter().all(valid) {
        return Err(incomplete(format!(
            "SignedHeaders '{}' must be lower-case header names separated by ';'.",
            truncate(s)
        )));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(names)
}

fn parse_signature(s: &str) -> Result<[u8; 32], AuthError> {
    let mut out = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(incomplete(
            "Signature must be 64 hexadecimal characters (a SHA-256 HMAC).",
        ));
    }
    Ok(out)
}

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<time::OffsetDateTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    if s.len() != 16 {
        return None;
    }
    PrimitiveDateTime::parse(s, fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Formats a time as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The values of the query parameter `name` (decoded; `+` is not a space).
fn query_param(raw: Option<&str>, name: &str) -> Vec<String> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
            (k == name).then(|| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| incomplete(format!("The {name} header is not valid text."))),
    }
}

/// What `headers` and the raw `query` present: `Ok(None)` when the request carries
/// no signature at all (neither an `Authorization` header nor `X-Amz-Algorithm`).
pub fn presented(headers: &HeaderMap, query: Option<&str>) -> Result<Option<Presented>, AuthError> {
    if let Some(auth) = header(headers, "authorization")? {
        let a = parse_authorization(auth)?;
        let amz_date = header(headers, "x-amz-date")?.ok_or_else(|| {
            incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            )
        })?;
        let time = parse_amz_date(amz_date).ok_or_else(|| {
            incomplete(format!(
                "X-Amz-Date '{}' must be in the ISO 8601 basic format YYYYMMDDTHHMMSSZ.",
                truncate(amz_date)
            ))
        })?;
        let security_token = header(headers, "x-amz-security-token")?.map(str::to_string);
        return Ok(Some(Presented {
            form: Form::Header,
            credential: a.credential,
            signed_headers: a.signed_headers,
            signature: a.signature,
            amz_date: amz_date.to_string(),
            time,
            security_token,
            expires: None,
        }));
    }
    let alg = query_param(query, "X-Amz-Algorithm");
    if alg.is_empty() {
        return Ok(None);
    }
    let one = |name: &str| -> Result<String, AuthError> {
        let mut v = query_param(query, name);
        match v.len() {
            1 => Ok(v.remove(0)),
            0 => Err(incomplete(format!(
                "AWS query-string parameters must include '{name}'."
            ))),
            _ => Err(incomplete(format!(
                "Query-string parameter '{name}' appears twice."
            ))),
        }
    };
    let alg = one("X-Amz-Algorithm")?;
    if alg != crate::ALGORITHM {
        return Err(incomplete(format!(
            "X-Amz-Algorithm '{}' is not supported; only {} is accepted.",
            truncate(&alg),
            crate::ALGORITHM
        )));
    }
    let credential = parse_credential(&one("X-Amz-Credential")?)?;
    let amz_date = one("X-Amz-Date")?;
    let time = parse_amz_date(&amz_date).ok_or_else(|| {
        incomplete(format!(
            "X-Amz-Date '{}' must be in the ISO 8601 basic format YYYYMMDDTHHMMSSZ.",
            truncate(&amz_date)
        ))
    })?;
    let expires_text = one("X-Amz-Expires")?;
    let expires = expires_text
        .parse::<u64>()
        .ok()
        .filter(|e| *e <= crate::MAX_PRESIGN_EXPIRES)
        .ok_or_else(|| {
            incomplete(format!(
                "X-Amz-Expires '{}' must be a number of seconds from 0 to {}.",
                truncate(&expires_text),
                crate::MAX_PRESIGN_EXPIRES
            ))
        })?;
    let signed_headers = parse_signed_headers(&one("X-Amz-SignedHeaders")?)?;
    let signature = parse_signature(&one("X-Amz-Signature")?)?;
    let security_token = query_param(query, "X-Amz-Security-Token")
        .into_iter()
        .next();
    Ok(Some(Presented {
        form: Form::Query,
        credential,
        signed_headers,
        signature,
        amz_date,
        time,
        security_token,
        expires: Some(expires),
    }))
}

/// At most 100 characters of untrusted text for an error message (on a character
/// boundary).
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    #[test]
    fn parses_a_header() {
        let a = parse_authorization(GOOD).unwrap();
        assert_eq!(a.credential.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.credential.date, "20150830");
        assert_eq!(a.credential.region, "us-east-1");
        assert_eq!(a.credential.service, "iam");
        assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert_eq!(a.signature[0], 0x5d);
        // Spacing after commas is optional.
        assert!(parse_authorization(&GOOD.replace(", ", ",")).is_ok());
    }

    #[test]
    fn refuses_malformed_headers_with_a_reason() {
        let cases = [
            ("", "unsupported algorithm"),
            ("AWS4-HMAC-SHA1 Credential=x", "unsupported algorithm"),
            ("AWS4-HMAC-SHA256", "requires 'Credential'"),
            ("AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00", "must have the form"),
            (
                "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request, SignedHeaders=host",
                "requires 'Signature'",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/2015083/r/s/aws4_request, SignedHeaders=host, Signature=00",
                "YYYYMMDD",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
                "'Host'",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request, SignedHeaders=host, Signature=zz",
                "64 hexadecimal",
            ),
            ("AWS4-HMAC-SHA256 Credential=a, Credential=b", "twice"),
            ("AWS4-HMAC-SHA256 Foo", "malformed component"),
        ];
        for (input, want) in cases {
            match parse_authorization(input) {
                Err(AuthError::Incomplete(m)) => assert!(m.contains(want), "{input}: {m}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let long = "é".repeat(500);
        for s in [
            "AWS4-HMAC-SHA256 ,,,,=,=",
            "AWS4-HMAC-SHA256 Credential=////",
            "AWS4-HMAC-SHA256 Credential=é/é/é/é/é",
            "AWS4-HMAC-SHA256\tSignature=",
            long.as_str(),
            "AWS4-HMAC-SHA256 SignedHeaders=;;;",
        ] {
            let _ = parse_authorization(s);
        }
    }

    /// Random mutations of valid inputs (a fixed seed): parsing either form never
    /// panics. The cargo-fuzz target explores further.
    #[test]
    fn random_mutations_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let pieces = [
            "AWS4-HMAC-SHA256",
            " ",
            ",",
            "=",
            "/",
            ";",
            "Credential",
            "SignedHeaders",
            "Signature",
            "aws4_request",
            "20150830",
            "é",
            "%",
            "%2F",
            "&",
            "X-Amz-Date",
            "X-Amz-Expires",
            "99999999999999999999",
            "T",
            "Z",
            "\u{0}",
            "host",
        ];
        for _ in 0..20_000 {
            let mut s = GOOD.to_string();
            for _ in 0..rng.gen_range(1..6) {
                let piece = pieces[rng.gen_range(0..pieces.len())];
                let mut at = rng.gen_range(0..=s.len());
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                if rng.gen_bool(0.5) {
                    s.insert_str(at, piece);
                } else {
                    let end = (at + rng.gen_range(0..8)).min(s.len());
                    let mut end = end;
                    while !s.is_char_boundary(end) {
                        end += 1;
                    }
                    s.replace_range(at..end, "");
                }
            }
            let _ = parse_authorization(&s);
            let q = s.replace([' ', ','], "&");
            let _ = presented(&HeaderMap::new(), Some(&q));
        }
    }

    #[test]
    fn dates_round_trip() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert!(parse_amz_date("20150830T123600").is_none());
        assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
        assert!(parse_amz_date("20151330T123600Z").is_none());
    }

    #[test]
    fn presigned_parameters() {
        let q = "Action=x&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20150830%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let p = presented(&HeaderMap::new(), Some(q)).unwrap().unwrap();
        assert_eq!(p.form, Form::Query);
        assert_eq!(p.expires, Some(60));
        assert_eq!(p.credential.service, "lambda");
        assert!(presented(&HeaderMap::new(), Some("a=b")).unwrap().is_none());
        let bad = q.replace("X-Amz-Expires=60", "X-Amz-Expires=999999999");
        assert!(matches!(
            presented(&HeaderMap::new(), Some(&bad)),
            Err(AuthError::Incomplete(_))
        ));
    }
}
