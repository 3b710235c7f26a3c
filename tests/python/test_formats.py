"""Ciphertext v1 (docs/formats/ciphertext-v1.md) and envelope v1 (docs/envelope-format.md)
implemented again from their specifications with Python's `cryptography`, and checked
against the golden files: the documents alone are enough to read Strongroom's formats."""

import base64
import json
import pathlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "crates/strongroom-crypto/tests/golden/ciphertext-v1"
SUITES = {1: AESGCM, 2: ChaCha20Poly1305}


def canonical(context):
    pairs = sorted(context.items(), key=lambda kv: kv[0].encode())
    out = struct.pack(">I", len(pairs))
    for k, v in pairs:
        kb, vb = k.encode(), v.encode()
        out += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
    return out


def open_v1(key, ct, context):
    assert ct[:2] == b"SR" and ct[2] == 1, "not a v1 ciphertext"
    suite = ct[3]
    header, key_id, version, salt, nonce = ct[:52], ct[4:20], ct[20:24], ct[24:40], ct[40:52]
    info = b"strongroom/ciphertext/v1" + key_id + version + (bytes([suite]) if suite != 1 else b"")
    mk = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)
    return SUITES[suite](mk).decrypt(nonce, ct[52:], header + canonical(context))


@pytest.mark.parametrize("file,suite", [("vectors.json", 1), ("chacha20-poly1305.json", 2)])
def test_golden_vectors_open_from_the_specification(file, suite):
    cases = json.loads((GOLDEN / file).read_text())
    assert len(cases) >= 6
    for c in cases:
        ct = base64.b64decode(c["ciphertext"])
        assert ct[3] == suite, c["name"]
        assert struct.unpack(">I", ct[20:24])[0] == c["version"]
        assert ct[4:20].hex() == c["key_id"].replace("-", "")
        assert open_v1(bytes.fromhex(c["key"]), ct, c["context"]).hex() == c["plaintext"], c["name"]


# Envelope v1 (docs/envelope-format.md), implemented again from its specification.

ENVELOPES = pathlib.Path(__file__).resolve().parents[2] / "crates/strongroom-crypto/tests/golden/envelope-v1"


def open_envelope(data_key, blob):
    """Reads an envelope as the specification describes; returns (context, members, plaintext)."""
    assert blob[:4] == b"SREV" and blob[4] == 1 and blob[5] == 1
    (chunk_size,) = struct.unpack(">I", blob[6:10])
    salt, commitment = blob[10:42], blob[42:74]
    (n,) = struct.unpack(">I", blob[74:78])
    ctx_bytes = blob[78 : 78 + n]
    fixed = blob[: 78 + n]
    pos = 78 + n
    (count,) = struct.unpack(">H", blob[pos : pos + 2])
    pos += 2
    members = []
    for _ in range(count):
        (ml,) = struct.unpack(">H", blob[pos : pos + 2])
        member = blob[pos + 2 : pos + 2 + ml].decode()
        pos += 2 + ml
        (wl,) = struct.unpack(">I", blob[pos : pos + 4])
        members.append((member, blob[pos + 4 : pos + 4 + wl]))
        pos += 4 + wl
    kdf = lambda info: HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(data_key)
    assert kdf(b"strongroom/envelope/v1/commitment") == commitment, "the key commitment differs"
    aead = AESGCM(kdf(b"strongroom/envelope/v1/chunk-key"))
    import hashlib

    aad = hashlib.sha256(fixed).digest()
    body = blob[pos:]
    full = chunk_size + 16
    out, i = b"", 0
    while True:
        chunk, body = body[:full], body[full:]
        last = len(body) == 0
        nonce = b"\0" * 7 + struct.pack(">I", i) + (b"\x01" if last else b"\x00")
        out += aead.decrypt(nonce, chunk, aad)
        if last:
            break
        i += 1
    # The context decodes back from its canonical encoding.
    (pairs,) = struct.unpack(">I", ctx_bytes[:4])
    ctx, p = {}, 4
    for _ in range(pairs):
        (kl,) = struct.unpack(">I", ctx_bytes[p : p + 4])
        k = ctx_bytes[p + 4 : p + 4 + kl].decode()
        p += 4 + kl
        (vl,) = struct.unpack(">I", ctx_bytes[p : p + 4])
        ctx[k] = ctx_bytes[p + 4 : p + 4 + vl].decode()
        p += 4 + vl
    assert canonical(ctx) == ctx_bytes
    return ctx, members, out


@pytest.mark.parametrize(
    "name,size",
    [("empty", 0), ("one-byte", 1), ("chunk-exactly", 16), ("three-chunks-and-a-bit", 37), ("default-chunk", 70000)],
)
def test_golden_envelopes_open_from_the_specification(name, size):
    blob = (ENVELOPES / f"{name}.srenv").read_bytes()
    ctx, members, plaintext = open_envelope(b"\x24" * 32, blob)
    assert ctx == {"tenant": "acme"}
    assert [m for m, _ in members] == ["strongroom:app/data", "aws-kms:arn:aws:kms:us-east-1:000000000000:key/x"]
    assert plaintext == bytes(i * 31 % 251 for i in range(size))
    # A changed body byte or another data key does not open.
    if size:
        bad = bytearray(blob)
        bad[-17] ^= 1
        with pytest.raises(Exception):
            open_envelope(b"\x24" * 32, bytes(bad))
    with pytest.raises(AssertionError, match="commitment"):
        open_envelope(b"\x25" * 32, blob)
