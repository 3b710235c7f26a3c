//! AWS key policies, translated into Strongroom's Cedar policies scoped to one key.
//!
//! A documented subset of the AWS policy language is understood (`docs/aws-compatibility.md`,
//! "Key policies"); anything outside it is refused naming the element, never ignored. The
//! translation is mechanical — the decision is Cedar's, in core. The original JSON is kept
//! in a comment at the top of the Cedar document, so GetKeyPolicy returns what was put.

use base64::Engine;
use serde_json::Value;

/// Largest key policy, as AWS allows.
pub(crate) const MAX_POLICY_BYTES: usize = 32 * 1024;
const ORIGINAL_MARKER: &str = "// aws-key-policy-json: ";

/// AWS KMS actions that concern one key, and the Strongroom actions they map to. Actions
/// that concern no key (kms:CreateKey, kms:ListKeys, …) are accepted and, as in AWS, have no
/// effect in a key policy.
const KEY_ACTIONS: &[(&str, &[&str])] = &[
    ("Encrypt", &["encrypt"]),
    ("Decrypt", &["decrypt", "asymmetric-decrypt"]),
    ("ReEncryptFrom", &["re-encrypt-from"]),
    ("ReEncryptTo", &["re-encrypt-to"]),
    ("GenerateDataKey", &["generate-data-key"]),
    ("GenerateDataKeyWithoutPlaintext", &["generate-data-key"]),
    ("GenerateDataKeyPair", &["generate-data-key"]),
    (
        "GenerateDataKeyPairWithoutPlaintext",
        &["generate-data-key"],
    ),
    ("Sign", &["sign"]),
    ("Verify", &["verify"]),
    ("GetPublicKey", &["get-public-key"]),
    ("GenerateMac", &["mac"]),
    ("VerifyMac", &["mac-verify"]),
    ("DescribeKey", &["get-key"]),
    ("GetKeyRotationStatus", &["get-key"]),
    ("ListResourceTags", &["get-key"]),
    ("ListGrants", &["list-grants"]),
    ("CreateGrant", &["create-grant"]),
    ("RetireGrant", &["retire-grant"]),
    ("RevokeGrant", &["revoke-grant"]),
    ("EnableKey", &["enable-key"]),
    ("DisableKey", &["disable-key"]),
    ("UpdateKeyDescription", &["update-key"]),
    ("TagResource", &["update-key"]),
    ("UntagResource", &["update-key"]),
    ("EnableKeyRotation", &["update-key"]),
    ("DisableKeyRotation", &["update-key"]),
    ("RotateKeyOnDemand", &["create-version"]),
    ("ScheduleKeyDeletion", &["schedule-key-deletion"]),
    ("CancelKeyDeletion", &["cancel-key-deletion"]),
    ("CreateAlias", &["create-alias"]),
    ("UpdateAlias", &["update-alias"]),
    ("DeleteAlias", &["delete-alias"]),
    ("DeriveSharedSecret", &["derive-shared-secret"]),
];

/// Actions AWS KMS has that concern no single key: valid in a policy, without effect here.
const OTHER_ACTIONS: &[&str] = &[
    "CreateKey",
    "ListKeys",
    "ListAliases",
    "GenerateRandom",
    "GetKeyPolicy",
    "PutKeyPolicy",
    "ListKeyPolicies",
    "ListRetirableGrants",
    "ListKeyRotations",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "DeleteCustomKeyStore",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore",
    "ReplicateKey",
    "UpdatePrimaryRegion",
];

/// Why a policy cannot be translated: the element at fault (AWS's
/// `MalformedPolicyDocumentException` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported(pub(crate) String);

fn bad(m: impl Into<String>) -> Unsupported {
    Unsupported(m.into())
}

/// A string or a list of strings (AWS allows either almost everywhere).
fn strings(v: &Value, what: &str) -> Result<Vec<String>, Unsupported> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{what} must be a string or a list of strings")))
            })
            .collect(),
        _ => Err(bad(format!(
            "{what} must be a string or a non-empty list of strings"
        ))),
    }
}

/// `*`-wildcard match of an AWS action pattern (case-insensitive, as AWS matches actions).
fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n
                .split_first()
                .is_some_and(|(d, nr)| c.eq_ignore_ascii_case(d) && go(rest, nr)),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

fn actions(v: &Value) -> Result<Vec<&'static str>, Unsupported> {
    let mut out: Vec<&'static str> = Vec::new();
    for a in strings(v, "Action")? {
        let Some(p) = a.strip_prefix("kms:").or_else(|| (a == "*").then_some("*")) else {
            return Err(bad(format!("Action {a}: only kms: actions are supported")));
        };
        if p.contains('?') {
            return Err(bad(format!("Action {a}: ? wildcards are not supported")));
        }
        let mut known = false;
        for (name, acts) in KEY_ACTIONS {
            if wildcard(p, name) {
                known = true;
                out.extend(acts.iter().copied());
            }
        }
        known |= OTHER_ACTIONS.iter().any(|n| wildcard(p, n));
        if !known {
            return Err(bad(format!("Action {a}: not an AWS KMS action")));
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Cedar string literal.
fn lit(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The principals a statement names: `None` for everyone (`*`, or this account's root).
fn principals(v: &Value, account: &str) -> Result<Option<Vec<String>>, Unsupported> {
    let aws = match v {
        Value::String(s) if s == "*" => return Ok(None),
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| k.as_str() != "AWS") {
                return Err(bad(format!(
                    "Principal {k}: only AWS principals are supported"
                )));
            }
            m.get("AWS")
                .ok_or_else(|| bad("Principal: give AWS principals"))?
        }
        _ => return Err(bad("Principal must be \"*\" or {\"AWS\": …}")),
    };
    let mut names = Vec::new();
    for p in strings(aws, "Principal AWS")? {
        if p == "*" || p == format!("arn:aws:iam::{account}:root") || p == account {
            return Ok(None);
        }
        let rest = p
            .strip_prefix(&format!("arn:aws:iam::{account}:"))
            .ok_or_else(|| {
                bad(format!(
                    "Principal {p}: only principals of this server's account ({account}) are supported"
                ))
            })?;
        let name = rest
            .strip_prefix("user/")
            .or_else(|| rest.strip_prefix("role/"))
            .ok_or_else(|| bad(format!("Principal {p}: name a user or role")))?;
        if strongroom_core::PrincipalName::try_new(name).is_err() {
            return Err(bad(format!(
                "Principal {p}: not a Strongroom principal name"
            )));
        }
        names.push(name.to_string());
    }
    Ok(Some(names))
}

/// One condition block → Cedar boolean expressions (all must hold).
fn conditions(v: &Value, account: &str) -> Result<Vec<String>, Unsupported> {
    let m = v
        .as_object()
        .ok_or_else(|| bad("Condition must be an object"))?;
    let mut out = Vec::new();
    for (op, body) in m {
        let like = match op.as_str() {
            "StringEquals" => false,
            "StringLike" => true,
            other => {
                return Err(bad(format!(
                    "Condition operator {other}: only StringEquals and StringLike are supported"
                )));
            }
        };
        let body = body
            .as_object()
            .ok_or_else(|| bad(format!("Condition {op} must be an object")))?;
        for (key, values) in body {
            let values = strings(values, &format!("Condition {op} {key}"))?;
            if key.eq_ignore_ascii_case("kms:CallerAccount") {
                // Every Strongroom principal is in this server's one account.
                let any = values.iter().any(|v| {
                    if like {
                        wildcard(v, account)
                    } else {
                        v == account
                    }
                });
                out.push(if any { "true".into() } else { "false".into() });
                continue;
            }
            let Some(ck) = key
                .strip_prefix("kms:EncryptionContext:")
                .or_else(|| key.strip_prefix("kms:encryptioncontext:"))
            else {
                return Err(bad(format!(
                    "Condition key {key}: only kms:EncryptionContext:<key> and kms:CallerAccount are supported"
                )));
            };
            if ck.is_empty() {
                return Err(bad(format!("Condition key {key}: name the context key")));
            }
            let tag = format!("context.encryption_context.getTag({})", lit(ck));
            let mut alts = Vec::new();
            for v in &values {
                if like {
                    if v.contains('?') {
                        return Err(bad(format!(
                            "Condition {op} {key}: ? wildcards are not supported"
                        )));
                    }
                    // Cedar `like` takes `*` as the wildcard, as StringLike does.
                    alts.push(format!("{tag} like {}", lit(v)));
                } else {
                    alts.push(format!("{tag} == {}", lit(v)));
                }
            }
            out.push(format!(
                "(context.encryption_context.hasTag({}) && ({}))",
                lit(ck),
                alts.join(" || ")
            ));
        }
    }
    Ok(out)
}

/// Translates a key policy (JSON) for the key at `key_path` into a Cedar document. The
/// returned text starts with the original JSON (base64) in a comment.
pub(crate) fn translate(json: &str, key_path: &str, account: &str) -> Result<String, Unsupported> {
    if json.len() > MAX_POLICY_BYTES {
        return Err(bad(format!(
            "the policy is larger than {MAX_POLICY_BYTES} bytes"
        )));
    }
    let doc: Value = serde_json::from_str(json).map_err(|_| bad("the policy is not valid JSON"))?;
    let top = doc
        .as_object()
        .ok_or_else(|| bad("the policy must be a JSON object"))?;
    if let Some(k) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "Version" | "Id" | "Statement"))
    {
        return Err(bad(format!("element {k} is not supported")));
    }
    match top.get("Version").and_then(Value::as_str) {
        None | Some("2012-10-17") => {}
        Some(v) => return Err(bad(format!("Version {v}: only 2012-10-17 is supported"))),
    }
    let statements: Vec<&Value> = match top.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => return Err(bad("Statement: give one statement or a list of them")),
    };
    let mut out = format!(
        "{ORIGINAL_MARKER}{}\n// Translated from an AWS key policy for key {key_path}; edit it through PutKeyPolicy.\n",
        base64::engine::general_purpose::STANDARD.encode(json.as_bytes())
    );
    for (i, st) in statements.iter().enumerate() {
        let st = st
            .as_object()
            .ok_or_else(|| bad(format!("Statement {i}: must be an object")))?;
        if let Some(k) = st.keys().find(|k| {
            !matches!(
                k.as_str(),
                "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition"
            )
        }) {
            return Err(bad(format!("Statement {i}: element {k} is not supported")));
        }
        let effect = match st.get("Effect").and_then(Value::as_str) {
            Some("Allow") => "permit",
            Some("Deny") => "forbid",
            _ => return Err(bad(format!("Statement {i}: Effect must be Allow or Deny"))),
        };
        let principal = principals(
            st.get("Principal")
                .ok_or_else(|| bad(format!("Statement {i}: Principal is required")))?,
            account,
        )?;
        let acts = actions(
            st.get("Action")
                .ok_or_else(|| bad(format!("Statement {i}: Action is required")))?,
        )?;
        match st.get("Resource").map(|r| strings(r, "Resource")) {
            Some(Ok(r)) if r == ["*"] => {}
            Some(Ok(_)) | Some(Err(_)) => {
                return Err(bad(format!(
                    "Statement {i}: Resource must be \"*\" (the key the policy is on)"
                )));
            }
            None => return Err(bad(format!("Statement {i}: Resource is required"))),
        }
        let mut when = match st.get("Condition") {
            Some(c) => conditions(c, account)?,
            None => Vec::new(),
        };
        if acts.is_empty() {
            continue;
        }
        if let Some(names) = principal {
            when.push(
                names
                    .iter()
                    .map(|n| format!("principal == Strongroom::Principal::{}", lit(n)))
                    .collect::<Vec<_>>()
                    .join(" || "),
            );
        }
        let sid = st
            .get("Sid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("statement-{i}"));
        out.push_str(&format!(
            "@id({})\n{effect} (\n  principal,\n  action in [{}],\n  resource == Strongroom::Key::{}\n)",
            lit(&sid),
            acts.iter()
                .map(|a| format!("Strongroom::Action::{}", lit(a)))
                .collect::<Vec<_>>()
                .join(", "),
            lit(key_path)
        ));
        if !when.is_empty() {
            out.push_str(&format!(
                "\nwhen {{ {} }}",
                when.iter()
                    .map(|w| format!("({w})"))
                    .collect::<Vec<_>>()
                    .join(" && ")
            ));
        }
        out.push_str(";\n");
    }
    Ok(out)
}

/// The AWS JSON a translated document was made from.
pub(crate) fn original(cedar: &str) -> Option<String> {
    let b64 = cedar.lines().next()?.strip_prefix(ORIGINAL_MARKER)?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
}

/// What GetKeyPolicy returns for a key without a policy of its own: AWS's default key
/// policy, which leaves the decision to the account's policies — here, the Cedar role
/// policies.
pub(crate) fn default_policy(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "000000000000";

    fn t(json: &str) -> Result<String, Unsupported> {
        translate(json, "aws/k1", ACCT)
    }

    #[test]
    fn statements_translate_and_validate_against_the_schema() {
        let json = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"use","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/app","arn:aws:iam::000000000000:role/batch"]},
             "Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*",
             "Condition":{"StringEquals":{"kms:EncryptionContext:tenant":["acme","globex"]},"StringLike":{"kms:EncryptionContext:file":"reports/*"}}},
            {"Effect":"Deny","Principal":"*","Action":"kms:ScheduleKeyDeletion","Resource":"*"},
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*",
             "Condition":{"StringEquals":{"kms:CallerAccount":"000000000000"}}}]}"#;
        let cedar = t(json).unwrap();
        assert_eq!(original(&cedar).as_deref(), Some(json));
        assert!(cedar.contains("permit ("), "{cedar}");
        assert!(cedar.contains("forbid ("), "{cedar}");
        assert!(cedar.contains(r#"Strongroom::Action::"generate-data-key""#));
        assert!(cedar.contains(r#"principal == Strongroom::Principal::"batch""#));
        assert!(cedar.contains(r#"getTag("file") like "reports/*""#));
        strongroom_core::KeyService::validate_policy_text("aws-key-k1", &cedar).unwrap();
    }

    #[test]
    fn anything_outside_the_subset_is_refused_by_name() {
        let cases = [
            (
                r#"{"Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"kms:*","Resource":"*"}]}"#,
                "NotPrincipal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":"kms:*","Resource":"*"}]}"#,
                "NotAction",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:x"}]}"#,
                "Resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"kms:*","Resource":"*"}]}"#,
                "Service",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"kms:*","Resource":"*"}]}"#,
                "999999999999",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#,
                "s3:GetObject",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Dance","Resource":"*"}]}"#,
                "kms:Dance",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}]}"#,
                "Bool",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}}]}"#,
                "aws:SourceIp",
            ),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"kms:*","Resource":"*"}]}"#,
                "Effect",
            ),
            (r#"{"Version":"2008-10-17","Statement":[]}"#, "2008-10-17"),
            (r#"{"Policy":"x","Statement":[]}"#, "Policy"),
            ("not json", "JSON"),
        ];
        for (json, element) in cases {
            let e = t(json).unwrap_err();
            assert!(e.0.contains(element), "{json}: {e:?}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        let json = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*",
            "Condition":{"StringEquals":{"kms:EncryptionContext:a\"b":"c\\\"); permit(principal,action,resource"}}}]}"#;
        let cedar = t(json).unwrap();
        strongroom_core::KeyService::validate_policy_text("aws-key-k1", &cedar).unwrap();
        assert_eq!(cedar.matches("permit (").count(), 1, "{cedar}");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "Encrypt"));
        assert!(wildcard("GenerateDataKey*", "GenerateDataKeyPair"));
        assert!(wildcard("encrypt", "Encrypt"));
        assert!(!wildcard("Re*To", "ReEncryptFrom"));
    }
}
