//! A 2 GiB stream through envelope encrypt and decrypt, piped from one to the other, in
//! constant memory. Its own test binary, so the process's peak memory is this test's alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::{Read, Write};

use strongroom_crypto::envelope::{self, Header, WrappedKey};
use strongroom_crypto::{EncryptionContext, KeyMaterial, hash};

const TOTAL: u64 = 2 * 1024 * 1024 * 1024;

/// `TOTAL` bytes of a pattern, generated as read.
struct Pattern(u64);

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(TOTAL - self.0) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.0 + i as u64) % 251) as u8;
        }
        self.0 += n as u64;
        Ok(n)
    }
}

/// Hashes what is written, keeping nothing.
struct Digest(aws_lc_rs::digest::Context, u64);

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn two_gib_in_constant_memory() {
    let before = peak_rss_kib();
    let dk = KeyMaterial::new(vec![9; 32]);
    let h = Header::new(
        &dk,
        envelope::DEFAULT_CHUNK_SIZE,
        EncryptionContext::empty(),
        vec![WrappedKey {
            member: "strongroom:t/k".into(),
            wrapped: vec![1; 64],
        }],
    )
    .unwrap();
    let (mut rx, mut tx) = std::io::pipe().unwrap();
    let dk2 = KeyMaterial::new(vec![9; 32]);
    let writer = std::thread::spawn(move || {
        let mut input = Pattern(0);
        let mut expected = Digest(
            aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            0,
        );
        let mut tee = TeeRead(&mut input, &mut expected);
        envelope::encrypt(&dk2, &h, &mut tee, &mut tx, |_| {}).unwrap();
        drop(tx);
        expected.0.finish().as_ref().to_vec()
    });
    let header = Header::read(&mut rx).unwrap();
    let mut out = Digest(
        aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
        0,
    );
    let n = envelope::decrypt(&dk, &header, &mut rx, &mut out, |_| {}).unwrap();
    let want = writer.join().unwrap();
    assert_eq!(n, TOTAL);
    assert_eq!(out.1, TOTAL);
    assert!(hash::constant_time_eq(out.0.finish().as_ref(), &want));
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(
        grew < 32 * 1024,
        "peak memory grew by {grew} KiB for a 2 GiB stream"
    );
}

/// Passes reads through, copying what was read into a writer.
struct TeeRead<'a, R: Read, W: Write>(&'a mut R, &'a mut W);

impl<R: Read, W: Write> Read for TeeRead<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.write_all(&buf[..n])?;
        Ok(n)
    }
}
