//! AWS Signature Version 4, the server side: read the `Authorization` header, recompute the
//! canonical request and the string to sign from what actually arrived, and hand them to
//! core ([`SigV4Request`]), which holds the secret and compares the signature.
//!
//! Reference: AWS's "Signature Version 4 signing process" (canonical request, string to
//! sign, credential scope). What is checked here, before core: the header's shape, the
//! signed header list (sorted, lower-case, no duplicates, `host` and `x-amz-date` among
//! them, each present), the scope's region and service, and `X-Amz-Date`'s format.

use axum::http::{HeaderMap, Method, Uri};
use strongroom_core::{SigV4Request, Timestamp};
use strongroom_crypto::hash;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request's signature could not even be checked, in AWS's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigError {
    /// No `Authorization` header (or not a SigV4 one): `MissingAuthenticationTokenException`.
    Missing,
    /// The header or the signed headers are malformed: `IncompleteSignatureException`.
    Incomplete(String),
    /// Well formed, but for another region or service: `InvalidSignatureException`.
    WrongScope(String),
}

fn hex_sha256(data: &[u8]) -> String {
    hex(&hash::sha256(data))
}

use strongroom_crypto::hash::hex;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Percent-encodes everything but the unreserved characters (and `/` when `keep_slash`), as
/// SigV4's canonical forms require.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical URI: the path as sent, with each segment encoded once more (services other
/// than S3 sign the double-encoded path). Dot segments are not resolved: a client that sent
/// them signed them.
fn canonical_uri(uri: &Uri) -> String {
    let path = uri.path();
    if path.is_empty() {
        return "/".into();
    }
    uri_encode(path, true)
}

/// The canonical query string: parameters decoded, re-encoded, sorted by name then value.
fn canonical_query(uri: &Uri) -> String {
    let Some(q) = uri.query().filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header's canonical value: every value it was sent with, trimmed, inner runs of spaces
/// collapsed, joined with commas.
fn canonical_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out = String::new();
    push_canonical_value(&mut out, headers, name)?;
    Some(out)
}

/// Appends [`canonical_value`] to `out`; `None` (with `out` partly written) when the header
/// is absent or not text.
fn push_canonical_value(out: &mut String, headers: &HeaderMap, name: &str) -> Option<()> {
    let mut values = 0;
    for v in headers.get_all(name) {
        let v = v.to_str().ok()?;
        if values > 0 {
            out.push(',');
        }
        values += 1;
        for (i, word) in v.split_whitespace().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    (values > 0).then_some(())
}

/// `20150830T123600Z` → seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits =
        |r: std::ops::Range<usize>| s.get(r).filter(|d| d.bytes().all(|c| c.is_ascii_digit()));
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?
    );
    Timestamp::parse_rfc3339(&rfc).map(|t| t.0)
}

struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: Vec<u8>,
}

fn parse_authorization(v: &str) -> Result<AuthHeader<'_>, SigError> {
    let incomplete = |m: &str| SigError::Incomplete(m.to_string());
    let rest = v
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or(SigError::Missing)?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| incomplete("Authorization: each element is name=value"))?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(incomplete("Authorization: unknown element")),
        };
        if slot.replace(val).is_some() {
            return Err(incomplete("Authorization: an element is given twice"));
        }
    }
    let credential =
        credential.ok_or_else(|| incomplete("Authorization: Credential is missing"))?;
    let signed = signed.ok_or_else(|| incomplete("Authorization: SignedHeaders is missing"))?;
    let signature = signature.ok_or_else(|| incomplete("Authorization: Signature is missing"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(
            "Credential must be <access key id>/<date>/<region>/<service>/aws4_request",
        ));
    };
    if terminator != "aws4_request" || access_key_id.is_empty() {
        return Err(incomplete(
            "Credential must be <access key id>/<date>/<region>/<service>/aws4_request",
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete("Credential: the date must be YYYYMMDD"));
    }
    let signature = unhex(signature)
        .filter(|s| s.len() == 32)
        .ok_or_else(|| incomplete("Signature must be 64 hex digits"))?;
    let signed_headers: Vec<&str> = signed.split(';').collect();
    let well_formed = signed_headers.iter().all(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if !well_formed || signed_headers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(incomplete(
            "SignedHeaders must be lower-case header names, sorted, each once",
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !signed_headers.contains(&required) {
            return Err(incomplete(&format!(
                "SignedHeaders must include {required}"
            )));
        }
    }
    Ok(AuthHeader {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Reads a SigV4-signed request for `service` in `region`. The signature itself is checked
/// by core, against the access key's secret.
pub(crate) fn read(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    region: &str,
    service: &str,
) -> Result<SigV4Request, SigError> {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(SigError::Missing)?
        .to_str()
        .map_err(|_| SigError::Incomplete("Authorization is not ASCII".into()))?;
    let a = parse_authorization(auth)?;
    if a.service != service {
        return Err(SigError::WrongScope(format!(
            "credential should be scoped to the service '{service}'"
        )));
    }
    if a.region != region {
        return Err(SigError::WrongScope(format!(
            "credential should be scoped to this server's region '{region}'"
        )));
    }
    let amz_date = canonical_value(headers, "x-amz-date")
        .ok_or_else(|| SigError::Incomplete("X-Amz-Date is missing".into()))?;
    let signed_at = parse_amz_date(&amz_date)
        .ok_or_else(|| SigError::Incomplete("X-Amz-Date must be YYYYMMDDTHHMMSSZ".into()))?;
    // Built in one buffer: method, URI, query, headers, signed header names, body hash.
    let mut canonical_request = String::with_capacity(512);
    canonical_request.push_str(method.as_str());
    canonical_request.push('\n');
    canonical_request.push_str(&canonical_uri(uri));
    canonical_request.push('\n');
    canonical_request.push_str(&canonical_query(uri));
    canonical_request.push('\n');
    for h in &a.signed_headers {
        canonical_request.push_str(h);
        canonical_request.push(':');
        push_canonical_value(&mut canonical_request, headers, h).ok_or_else(|| {
            SigError::Incomplete(format!("the signed header {h} is not in the request"))
        })?;
        canonical_request.push('\n');
    }
    canonical_request.push('\n');
    for (i, h) in a.signed_headers.iter().enumerate() {
        if i > 0 {
            canonical_request.push(';');
        }
        canonical_request.push_str(h);
    }
    canonical_request.push('\n');
    strongroom_crypto::hash::hex_into(&mut canonical_request, &hash::sha256(body));
    let scope = format!("{}/{}/{}/aws4_request", a.date, a.region, a.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    );
    let session_token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(|t| strongroom_core::BearerToken::new(t.to_string()));
    Ok(SigV4Request {
        session_token,
        access_key_id: a.access_key_id.to_string(),
        scope_date: a.date.to_string(),
        region: a.region.to_string(),
        service: a.service.to_string(),
        signed_at,
        string_to_sign,
        signature: a.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn verify(r: &SigV4Request) -> bool {
        let s = strongroom_crypto::sigv4::signature(
            SECRET,
            &r.scope_date,
            &r.region,
            &r.service,
            r.string_to_sign.as_bytes(),
        );
        s.as_slice() == r.signature.as_slice()
    }

    // The "get-vanilla" and "get-vanilla-query-order-key-case" cases of the AWS SigV4 test
    // suite (request, credential and expected signature as published there).
    #[test]
    fn aws_test_suite_vectors() {
        let cases = [
            (
                "/",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        ];
        for (path, sig) in cases {
            let h = headers(&[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
                (
                    "authorization",
                    &format!(
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
                    ),
                ),
            ]);
            let uri: Uri = path.parse().unwrap();
            let r = read(&Method::GET, &uri, &h, b"", "us-east-1", "service").unwrap();
            assert_eq!(r.access_key_id, "AKIDEXAMPLE");
            assert_eq!(r.signed_at, 1_440_938_160);
            assert!(verify(&r), "{path}");
        }
    }

    #[test]
    fn anything_changed_after_signing_breaks_the_signature() {
        let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
        );
        let base = [
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", auth.as_str()),
        ];
        let check = |method: Method, path: &str, h: &[(&str, &str)], body: &[u8]| {
            let r = read(
                &method,
                &path.parse().unwrap(),
                &headers(h),
                body,
                "us-east-1",
                "service",
            )
            .unwrap();
            verify(&r)
        };
        assert!(check(Method::GET, "/", &base, b""));
        assert!(!check(Method::POST, "/", &base, b""));
        assert!(!check(Method::GET, "/", &base, b"x"));
        for path in ["//", "/./", "/%2F", "/x", "/?a=b"] {
            assert!(!check(Method::GET, path, &base, b""), "{path}");
        }
        let mut other_host = base;
        other_host[0] = ("host", "evil.example.com");
        assert!(!check(Method::GET, "/", &other_host, b""));
        // A signed header sent twice has a different canonical value.
        let mut dup = base.to_vec();
        dup.push(("host", "example.amazonaws.com"));
        assert!(!check(Method::GET, "/", &dup, b""));
        // Unsigned headers may be added.
        let mut extra = base.to_vec();
        extra.push(("user-agent", "x"));
        assert!(check(Method::GET, "/", &extra, b""));
    }

    #[test]
    fn malformed_authorization_headers() {
        let uri: Uri = "/".parse().unwrap();
        let read_with = |auth: Option<&str>, date: &str| {
            let mut h = vec![("host", "h"), ("x-amz-date", date)];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            read(&Method::POST, &uri, &headers(&h), b"", "us-east-1", "kms")
        };
        let sig = "0".repeat(64);
        let good = format!(
            "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
        );
        assert!(read_with(Some(&good), "20150830T123600Z").is_ok());
        assert!(matches!(
            read_with(None, "20150830T123600Z"),
            Err(SigError::Missing)
        ));
        assert!(matches!(
            read_with(Some("Bearer abc"), "20150830T123600Z"),
            Err(SigError::Missing)
        ));
        for bad in [
            good.replace("Signature=", "Signature=zz"),
            good.replace(&sig, &"0".repeat(62)),
            good.replace("host;x-amz-date", "x-amz-date;host"),
            good.replace("host;x-amz-date", "host;host;x-amz-date"),
            good.replace("host;x-amz-date", "x-amz-date"),
            good.replace("host;x-amz-date", "Host;x-amz-date"),
            good.replace("host;x-amz-date", "content-type;host;x-amz-date"),
            good.replace("/aws4_request", "/aws5_request"),
            good.replace("AK/20150830", "AK/2015083"),
            good.replace(", Signature", ", Signature=1, Signature"),
            good.replace("Credential=AK/", "Credential=/"),
        ] {
            assert!(
                matches!(
                    read_with(Some(&bad), "20150830T123600Z"),
                    Err(SigError::Incomplete(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            read_with(Some(&good), "2015-08-30T12:36:00Z"),
            Err(SigError::Incomplete(_))
        ));
        assert!(matches!(
            read_with(
                Some(&good.replace("us-east-1", "eu-west-1")),
                "20150830T123600Z"
            ),
            Err(SigError::WrongScope(_))
        ));
        assert!(matches!(
            read_with(Some(&good.replace("/kms/", "/s3/")), "20150830T123600Z"),
            Err(SigError::WrongScope(_))
        ));
    }
}
