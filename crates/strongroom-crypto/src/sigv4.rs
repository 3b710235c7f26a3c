//! AWS Signature Version 4: the signing-key derivation and the request signature.
//!
//! Only the HMAC part lives here. Building the canonical request and the string to sign
//! from an HTTP request is the AWS front-end's job (`strongroom-server/src/aws/sigv4.rs`);
//! the secret access key never leaves core, which calls [`signature`].

use aws_lc_rs::hmac;

fn mac(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// A SigV4 signing key: the secret narrowed to one day, region and service. It signs
/// like the secret for that scope only, so a verifier may keep it for the day instead of
/// deriving it (four HMACs) on every request. Its bytes live inside aws-lc's HMAC context.
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Derives the signing key of `secret` for the credential scope `date` (`YYYYMMDD`) /
    /// `region` / `service` / `aws4_request`.
    pub fn derive(secret: &[u8], date: &str, region: &str, service: &str) -> Self {
        let mut k = Vec::with_capacity(4 + secret.len());
        k.extend_from_slice(b"AWS4");
        k.extend_from_slice(secret);
        let k_date = mac(&k, date.as_bytes());
        zeroize::Zeroize::zeroize(&mut k);
        let k_region = mac(k_date.as_ref(), region.as_bytes());
        let k_service = mac(k_region.as_ref(), service.as_bytes());
        let k_signing = mac(k_service.as_ref(), b"aws4_request");
        Self(hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref()))
    }

    /// The signature of `string_to_sign`.
    pub fn sign(&self, string_to_sign: &[u8]) -> [u8; 32] {
        let sig = hmac::sign(&self.0, string_to_sign);
        let mut out = [0u8; 32];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

/// The SigV4 signature of `string_to_sign` under `secret` for the credential scope
/// `date` (`YYYYMMDD`) / `region` / `service` / `aws4_request`.
pub fn signature(
    secret: &[u8],
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &[u8],
) -> [u8; 32] {
    SigningKey::derive(secret, date, region, service).sign(string_to_sign)
}

#[cfg(test)]
mod tests {
    // The example from AWS's "Create a signed AWS API request" guide and the "get-vanilla"
    // case of the AWS SigV4 test suite (secret, scope and string to sign are published there).
    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn get_vanilla_known_answer() {
        let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
                   bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63";
        let sig = super::signature(SECRET, "20150830", "us-east-1", "service", sts.as_bytes());
        assert_eq!(
            hex::encode(sig),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let other = super::signature(SECRET, "20150831", "us-east-1", "service", sts.as_bytes());
        assert_ne!(sig, other);
    }
}
