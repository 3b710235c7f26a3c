"""Ciphertext v1 (docs/formats/ciphertext-v1.md) implemented again from its specification
with Python's `cryptography`, and checked against the golden vectors: the document alone is
enough to read Strongroom's ciphertexts."""

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
