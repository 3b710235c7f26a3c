//! A little DER, for public keys and signatures providers give in other shapes: JWKs and
//! raw ECDSA `r || s` (Azure Key Vault), EC points (PKCS#11).

fn len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let b = n.to_be_bytes();
        let skip = b.iter().take_while(|x| **x == 0).count();
        out.push(0x80 | (b.len() - skip) as u8);
        out.extend_from_slice(&b[skip..]);
    }
}

pub(crate) fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// An unsigned big-endian INTEGER.
pub(crate) fn uint(be: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = be
            .iter()
            .take_while(|x| **x == 0)
            .count()
            .min(be.len().saturating_sub(1));
        &be[skip..]
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tlv(0x02, &body)
}

pub(crate) fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub(crate) fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(bytes);
    tlv(0x03, &body)
}

/// An OBJECT IDENTIFIER from its DER body.
pub(crate) fn oid(body: &[u8]) -> Vec<u8> {
    tlv(0x06, body)
}
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
#[cfg_attr(not(feature = "azure-keyvault"), allow(dead_code))]
pub(crate) const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
pub(crate) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The SubjectPublicKeyInfo of an EC public key: the curve's OID and the uncompressed point.
pub(crate) fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
    seq(&[
        seq(&[oid(OID_EC_PUBLIC_KEY), oid(curve)]),
        bit_string(point),
    ])
}

/// The SubjectPublicKeyInfo of an RSA public key from its modulus and exponent (big-endian).
pub(crate) fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa = seq(&[uint(n), uint(e)]);
    seq(&[seq(&[oid(OID_RSA), tlv(0x05, &[])]), bit_string(&rsa)])
}

/// The DER `DigestInfo` of a SHA-2 digest, as RSASSA-PKCS1-v1_5 signs it (RFC 8017 §9.2).
#[cfg(feature = "pkcs11")]
pub(crate) fn digest_info(hash: strongroom_crypto::Sha2, digest: &[u8]) -> Vec<u8> {
    // id-sha256, id-sha384, id-sha512 (2.16.840.1.101.3.4.2.1/2/3).
    let last = match hash {
        strongroom_crypto::Sha2::Sha256 => 1,
        strongroom_crypto::Sha2::Sha384 => 2,
        strongroom_crypto::Sha2::Sha512 => 3,
    };
    let alg = seq(&[
        oid(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last]),
        tlv(0x05, &[]),
    ]);
    seq(&[alg, tlv(0x04, digest)])
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw ECDSA `r || s`.
pub(crate) fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(seq(&[uint(r), uint(s)]))
}
