//! Envelope encryption, format v1 (`docs/envelope-format.md`): a stream of any length sealed
//! under a data key in fixed-size chunks (AES-256-GCM in a STREAM construction: the chunk
//! counter and a final-chunk flag are in each nonce), with a header that names the
//! encryption context and carries the data key wrapped by one or more key-management
//! members. Memory stays constant for any size: one chunk in, one chunk out.
//!
//! **Invariants:** every chunk is authenticated against the header's fixed part (format,
//! chunk size, salt, key commitment, context), so changing it fails every chunk; the chunk
//! counter and final flag make reordering, dropping, duplicating and truncating chunks
//! fail; the key commitment makes a wrapped key that opens to another data key fail before
//! any chunk is opened. The wrapped keys themselves are outside the authenticated part, so
//! they can be re-wrapped without touching the body.

use std::io::{Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use aws_lc_rs::hkdf;

use crate::{EncryptionContext, KeyMaterial, hash, rand};

/// The first 4 bytes of every envelope.
pub const MAGIC: &[u8; 4] = b"SREV";
/// The format version this module writes and reads.
pub const VERSION: u8 = 1;
/// Suite 1: AES-256-GCM chunks, HKDF-SHA-256 chunk key, STREAM nonces.
pub const SUITE_AES256GCM_STREAM: u8 = 1;
/// The chunk size used unless another is asked for (64 KiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Smallest and largest chunk sizes accepted.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest chunk size accepted (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Data keys are 32 bytes.
pub const DATA_KEY_LEN: usize = 32;
/// Most wrapped keys in one header.
pub const MAX_WRAPPED_KEYS: usize = 16;
const TAG: usize = 16;
const FIXED_LEN: usize = 4 + 1 + 1 + 4 + 32 + 32 + 4;
const MAX_CONTEXT_LEN: usize = 64 * 1024;
const MAX_MEMBER_LEN: usize = 1024;
const MAX_WRAPPED_LEN: usize = 64 * 1024;
const CHUNK_KEY_INFO: &[u8] = b"strongroom/envelope/v1/chunk-key";
const COMMITMENT_INFO: &[u8] = b"strongroom/envelope/v1/commitment";

/// One copy of the data key, wrapped by a key-management member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Who wrapped it and can unwrap it, e.g. `strongroom:payments/data`.
    pub member: String,
    /// The wrapped data key, as that member returned it.
    pub wrapped: Vec<u8>,
}

/// An envelope's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Plaintext bytes per chunk (the last chunk may hold fewer).
    pub chunk_size: u32,
    /// Random per envelope: the chunk key is derived with it.
    pub salt: [u8; 32],
    /// Commits to the data key: a wrapped key that opens to another key is refused.
    pub commitment: [u8; 32],
    /// The encryption context, authenticated with every chunk.
    pub context: EncryptionContext,
    /// The data key, wrapped by each member.
    pub keys: Vec<WrappedKey>,
}

/// Why an envelope could not be written or read. Never carries plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The input does not start with the magic bytes.
    #[error("not a Strongroom envelope (it does not start with \"SREV\")")]
    NotAnEnvelope,
    /// A version or suite this release does not read.
    #[error(
        "envelope format version {version} suite {suite} is not supported (this release reads version 1 suite 1)"
    )]
    Unsupported {
        /// The format version byte.
        version: u8,
        /// The suite byte.
        suite: u8,
    },
    /// The header is not valid.
    #[error("the envelope header is malformed: {0}")]
    Malformed(&'static str),
    /// The data key does not match the header's commitment.
    #[error(
        "the data key does not belong to this envelope (its wrapped key was replaced, or another envelope's key was used)"
    )]
    WrongDataKey,
    /// A chunk failed authentication: changed, moved, from another envelope, or the header changed.
    #[error("chunk {0} failed authentication: the envelope was changed or its chunks reordered")]
    Tampered(u64),
    /// The stream ended before its final chunk.
    #[error("the envelope is truncated: its final chunk is missing")]
    Truncated,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The system random generator or the crypto library failed.
    #[error("{0}")]
    Crypto(#[from] crate::Error),
}

type Result<T> = std::result::Result<T, EnvelopeError>;

fn prk(data_key: &KeyMaterial, salt: &[u8; 32]) -> Result<hkdf::Prk> {
    // Exposed to derive the chunk key and commitment; both live only in aws-lc or here.
    let ikm = data_key.expose_secret();
    if ikm.len() != DATA_KEY_LEN {
        return Err(crate::Error::InvalidKeyMaterial.into());
    }
    Ok(hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm))
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn commitment(data_key: &KeyMaterial, salt: &[u8; 32]) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    prk(data_key, salt)?
        .expand(&[COMMITMENT_INFO], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| crate::Error::Internal("hkdf expand"))?;
    Ok(out)
}

fn chunk_key(data_key: &KeyMaterial, salt: &[u8; 32]) -> Result<LessSafeKey> {
    let prk = prk(data_key, salt)?;
    let okm = prk
        .expand(&[CHUNK_KEY_INFO], &AES_256_GCM)
        .map_err(|_| crate::Error::Internal("hkdf expand"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

impl Header {
    /// A header for a new envelope under `data_key` (a fresh salt; the commitment to it).
    pub fn new(
        data_key: &KeyMaterial,
        chunk_size: u32,
        context: EncryptionContext,
        keys: Vec<WrappedKey>,
    ) -> Result<Self> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(EnvelopeError::Malformed("chunk size out of range"));
        }
        let salt = rand::array::<32>()?;
        let h = Self {
            chunk_size,
            salt,
            commitment: commitment(data_key, &salt)?,
            context,
            keys,
        };
        h.check_keys()?;
        Ok(h)
    }

    /// [`Header::new`] with a given salt: only for golden vectors, which must be
    /// reproducible. A salt must never be reused with the same data key.
    #[doc(hidden)]
    pub fn dangerous_new_with_salt(
        data_key: &KeyMaterial,
        salt: [u8; 32],
        chunk_size: u32,
        context: EncryptionContext,
        keys: Vec<WrappedKey>,
    ) -> Result<Self> {
        let mut h = Self::new(data_key, chunk_size, context, keys)?;
        h.salt = salt;
        h.commitment = commitment(data_key, &salt)?;
        Ok(h)
    }

    fn check_keys(&self) -> Result<()> {
        if self.keys.is_empty() || self.keys.len() > MAX_WRAPPED_KEYS {
            return Err(EnvelopeError::Malformed("1 to 16 wrapped keys"));
        }
        for k in &self.keys {
            if k.member.is_empty() || k.member.len() > MAX_MEMBER_LEN {
                return Err(EnvelopeError::Malformed(
                    "a member name is empty or too long",
                ));
            }
            if k.wrapped.is_empty() || k.wrapped.len() > MAX_WRAPPED_LEN {
                return Err(EnvelopeError::Malformed(
                    "a wrapped key is empty or too long",
                ));
            }
        }
        Ok(())
    }

    /// The authenticated part: everything but the wrapped keys.
    fn fixed(&self) -> Vec<u8> {
        let ctx = self.context.encode();
        let mut out = Vec::with_capacity(FIXED_LEN + ctx.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(SUITE_AES256GCM_STREAM);
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&(ctx.len() as u32).to_be_bytes());
        out.extend_from_slice(&ctx);
        out
    }

    /// The header's bytes as written at the start of an envelope.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check_keys()?;
        let mut out = self.fixed();
        out.extend_from_slice(&(self.keys.len() as u16).to_be_bytes());
        for k in &self.keys {
            out.extend_from_slice(&(k.member.len() as u16).to_be_bytes());
            out.extend_from_slice(k.member.as_bytes());
            out.extend_from_slice(&(k.wrapped.len() as u32).to_be_bytes());
            out.extend_from_slice(&k.wrapped);
        }
        Ok(out)
    }

    /// Reads a header from the start of `r`, leaving `r` at the first chunk.
    pub fn read(r: &mut impl Read) -> Result<Self> {
        let mut fixed = [0u8; FIXED_LEN];
        read_exact(r, &mut fixed[..4]).map_err(|e| match e {
            EnvelopeError::Truncated => EnvelopeError::NotAnEnvelope,
            e => e,
        })?;
        if &fixed[..4] != MAGIC {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        read_exact(r, &mut fixed[4..])?;
        if fixed[4] != VERSION || fixed[5] != SUITE_AES256GCM_STREAM {
            return Err(EnvelopeError::Unsupported {
                version: fixed[4],
                suite: fixed[5],
            });
        }
        let chunk_size = u32::from_be_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(EnvelopeError::Malformed("chunk size out of range"));
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&fixed[10..42]);
        let mut commitment = [0u8; 32];
        commitment.copy_from_slice(&fixed[42..74]);
        let ctx_len = u32::from_be_bytes([fixed[74], fixed[75], fixed[76], fixed[77]]) as usize;
        if ctx_len > MAX_CONTEXT_LEN {
            return Err(EnvelopeError::Malformed("context too long"));
        }
        let mut ctx = vec![0u8; ctx_len];
        read_exact(r, &mut ctx)?;
        let context = EncryptionContext::decode(&ctx).ok_or(EnvelopeError::Malformed(
            "the context is not a valid encoding",
        ))?;
        let mut n = [0u8; 2];
        read_exact(r, &mut n)?;
        let count = u16::from_be_bytes(n) as usize;
        if count == 0 || count > MAX_WRAPPED_KEYS {
            return Err(EnvelopeError::Malformed("1 to 16 wrapped keys"));
        }
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            read_exact(r, &mut n)?;
            let len = u16::from_be_bytes(n) as usize;
            if len == 0 || len > MAX_MEMBER_LEN {
                return Err(EnvelopeError::Malformed(
                    "a member name is empty or too long",
                ));
            }
            let mut member = vec![0u8; len];
            read_exact(r, &mut member)?;
            let member = String::from_utf8(member)
                .map_err(|_| EnvelopeError::Malformed("a member name is not UTF-8"))?;
            let mut l4 = [0u8; 4];
            read_exact(r, &mut l4)?;
            let len = u32::from_be_bytes(l4) as usize;
            if len == 0 || len > MAX_WRAPPED_LEN {
                return Err(EnvelopeError::Malformed(
                    "a wrapped key is empty or too long",
                ));
            }
            let mut wrapped = vec![0u8; len];
            read_exact(r, &mut wrapped)?;
            keys.push(WrappedKey { member, wrapped });
        }
        Ok(Self {
            chunk_size,
            salt,
            commitment,
            context,
            keys,
        })
    }

    /// Checks that `data_key` is the key this envelope was sealed under.
    pub fn check_data_key(&self, data_key: &KeyMaterial) -> Result<()> {
        if hash::constant_time_eq(&commitment(data_key, &self.salt)?, &self.commitment) {
            Ok(())
        } else {
            Err(EnvelopeError::WrongDataKey)
        }
    }
}

/// Reads exactly `buf.len()` bytes; `Truncated` if the input ends first.
fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    if read_full(r, buf)? < buf.len() {
        return Err(EnvelopeError::Truncated);
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Writes the header, then `input` sealed in chunks, to `output`; returns the plaintext
/// bytes read. `progress` is told the running total after each chunk.
pub fn encrypt(
    data_key: &KeyMaterial,
    header: &Header,
    input: &mut impl Read,
    output: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let (key, aad) = chunk_keying(data_key, header)?;
    output.write_all(&header.encode()?)?;
    let size = header.chunk_size as usize;
    // One chunk plus one byte of look-ahead: the final chunk is known before it is sealed.
    let mut buf = vec![0u8; size + 1 + TAG];
    let mut have = read_full(input, &mut buf[..size + 1])?;
    let mut counter: u32 = 0;
    let mut total = 0u64;
    loop {
        let last = have <= size;
        let n = have.min(size);
        let carry = if last { None } else { Some(buf[size]) };
        let tag = seal_chunk(&key, &aad, counter, last, &mut buf[..n])?;
        output.write_all(&buf[..n])?;
        output.write_all(tag.as_ref())?;
        total += n as u64;
        progress(total);
        let Some(c) = carry else {
            break;
        };
        counter = next_chunk(counter)?;
        buf[0] = c;
        have = 1 + read_full(input, &mut buf[1..size + 1])?;
    }
    output.flush()?;
    Ok(total)
}

/// [`encrypt`] of a plaintext held in memory: the same bytes, in a new buffer sized
/// exactly, with each chunk sealed in place there, so the plaintext is copied once (the
/// streaming form copies it into its chunk buffer and again to its writer).
pub fn encrypt_to_vec(
    data_key: &KeyMaterial,
    header: &Header,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let (key, aad) = chunk_keying(data_key, header)?;
    let head = header.encode()?;
    let size = header.chunk_size as usize;
    let chunks = plaintext.len().div_ceil(size).max(1);
    let mut out = Vec::with_capacity(head.len() + plaintext.len() + chunks * TAG);
    out.extend_from_slice(&head);
    let mut rest = plaintext;
    let mut counter: u32 = 0;
    loop {
        // As in `encrypt`: a plaintext of whole chunks ends with a full final chunk, and an
        // empty one is a single empty final chunk.
        let last = rest.len() <= size;
        let (chunk, after) = rest.split_at(rest.len().min(size));
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = seal_chunk(&key, &aad, counter, last, &mut out[start..])?;
        out.extend_from_slice(tag.as_ref());
        if last {
            return Ok(out);
        }
        rest = after;
        counter = next_chunk(counter)?;
    }
}

/// The key and associated data every chunk under `header` is sealed with, once `data_key`
/// is checked against the header's commitment.
fn chunk_keying(data_key: &KeyMaterial, header: &Header) -> Result<(LessSafeKey, [u8; 32])> {
    header.check_data_key(data_key)?;
    Ok((
        chunk_key(data_key, &header.salt)?,
        hash::sha256(&header.fixed()),
    ))
}

/// Seals one chunk in place; returns its tag.
fn seal_chunk(
    key: &LessSafeKey,
    aad: &[u8; 32],
    counter: u32,
    last: bool,
    chunk: &mut [u8],
) -> Result<Tag> {
    Ok(key
        .seal_in_place_separate_tag(nonce(counter, last), Aad::from(aad), chunk)
        .map_err(|_| crate::Error::Internal("aes-gcm seal"))?)
}

/// The counter of the chunk after `counter`; a stream has at most 2^32 chunks.
fn next_chunk(counter: u32) -> Result<u32> {
    counter
        .checked_add(1)
        .ok_or(EnvelopeError::Malformed("more than 2^32 chunks"))
}

/// Opens the chunks that follow `header` in `input` and writes their plaintext to `output`,
/// each only after it authenticated. Fails on the first bad chunk, a missing final chunk or
/// trailing bytes; plaintext of the chunks before it has then been written, so write to a
/// temporary file and keep it only on success. Returns the plaintext bytes written.
pub fn decrypt(
    data_key: &KeyMaterial,
    header: &Header,
    input: &mut impl Read,
    output: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let (key, aad) = chunk_keying(data_key, header)?;
    let full = header.chunk_size as usize + TAG;
    let mut buf = vec![0u8; full + 1];
    let mut have = read_full(input, &mut buf[..full + 1])?;
    let mut counter: u32 = 0;
    let mut total = 0u64;
    loop {
        let last = have <= full;
        if have < TAG {
            return Err(EnvelopeError::Truncated);
        }
        let n = have.min(full);
        let carry = if last { None } else { Some(buf[full]) };
        // The final chunk is kept aside: if it fails, it is told apart from a non-final
        // chunk presented as the last one (a truncation).
        let kept = last.then(|| buf[..n].to_vec());
        let plain = match key.open_in_place(nonce(counter, last), Aad::from(&aad), &mut buf[..n]) {
            Ok(p) => p,
            Err(_) => {
                let mut copy = kept.unwrap_or_default();
                let truncated = last
                    && key
                        .open_in_place(nonce(counter, false), Aad::from(&aad), &mut copy)
                        .is_ok();
                return Err(if truncated {
                    EnvelopeError::Truncated
                } else {
                    EnvelopeError::Tampered(u64::from(counter))
                });
            }
        };
        output.write_all(plain)?;
        total += plain.len() as u64;
        progress(total);
        let Some(c) = carry else {
            break;
        };
        counter = next_chunk(counter)?;
        buf[0] = c;
        have = 1 + read_full(input, &mut buf[1..full + 1])?;
    }
    output.flush()?;
    Ok(total)
}
