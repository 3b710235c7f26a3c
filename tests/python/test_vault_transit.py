"""The Vault Transit API through hvac, the client Vault users use. Every test runs twice:
against the real `strongroom` binary and against a real OpenBao dev server (the reference).
An assertion holds on both unless it is marked with a deviation from
docs/vault-compatibility.md ("Deviations"), where each target's behaviour is asserted."""

import base64
import itertools
import json
import urllib.request

import hvac
import hvac.exceptions as hx
import pytest

from conftest import ROOT_TOKEN, OpenBao, Server

B = lambda b: base64.b64encode(b).decode()  # noqa: E731
names = (f"k{i}" for i in itertools.count())


class Target:
    def __init__(self, kind):
        self.kind = kind
        if kind == "strongroom":
            self.proc = Server()
            self.url, self.token = self.proc.url, ROOT_TOKEN
        else:
            self.proc = OpenBao()
            self.url, self.token = self.proc.url, self.proc.token
        self.client = hvac.Client(url=self.url, token=self.token)
        self.transit = self.client.secrets.transit

    @property
    def strongroom(self):
        return self.kind == "strongroom"

    def raw(self, method, path, body=None, token="default"):
        """(status, parsed body or None) of a request hvac would not make."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token == "default":
            token = self.token
        if token:
            req.add_header("X-Vault-Token", token)
        try:
            with urllib.request.urlopen(req) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None


@pytest.fixture(scope="module", params=["strongroom", "openbao"])
def vault(request):
    t = Target(request.param)
    yield t
    t.proc.stop()


def new_key(v, **kw):
    name = next(names)
    v.transit.create_key(name, **kw)
    return name


def key_names(v):
    try:
        return v.transit.list_keys()["data"]["keys"]
    except hx.InvalidPath:  # no keys at all: 404, as Vault answers an empty LIST
        return []


def errors_of(exc):
    return exc.value.errors or []


# ---- keys ----


def test_key_lifecycle(vault):
    name = new_key(vault)
    k = vault.transit.read_key(name)["data"]
    assert (k["type"], k["latest_version"], k["min_decryption_version"], k["min_encryption_version"]) == ("aes256-gcm96", 1, 1, 0)
    assert (k["derived"], k["exportable"], k["deletion_allowed"]) == (False, False, False)
    assert (k["supports_encryption"], k["supports_decryption"], k["supports_signing"]) == (True, True, False)
    assert list(k["keys"]) == ["1"] and isinstance(k["keys"]["1"], int)
    assert name in key_names(vault)

    # Creating it again changes nothing, even with other parameters.
    again = vault.transit.create_key(name, exportable=True)
    assert again["data"]["keys"] == k["keys"] and again["data"]["exportable"] is False

    rotated = vault.transit.rotate_key(name)["data"]
    assert rotated["latest_version"] == 2 and sorted(rotated["keys"]) == ["1", "2"]

    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.delete_key(name)
    assert errors_of(e) == [f"error deleting policy {name}: deletion is not allowed for this key"]
    vault.transit.update_key_configuration(name, deletion_allowed=True)
    assert vault.transit.read_key(name)["data"]["deletion_allowed"] is True
    vault.transit.delete_key(name)
    with pytest.raises(hx.InvalidPath):
        vault.transit.read_key(name)
    assert name not in key_names(vault)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.delete_key(name)
    assert "not found" in errors_of(e)[0]
    # Deviation "delete": Strongroom deletes after a one-day window, during which the name
    # stays taken; OpenBao deletes at once and lets the name be reused.
    if vault.strongroom:
        with pytest.raises(hx.InvalidRequest):
            vault.transit.create_key(name)
    else:
        vault.transit.create_key(name)


def test_reading_a_missing_key_or_an_empty_list(vault):
    with pytest.raises(hx.InvalidPath):
        vault.transit.read_key("never-created")
    status, body = vault.raw("GET", "/v1/transit/keys/never-created")
    assert (status, body) == (404, {"errors": []})


def test_key_types(vault):
    for kind in ["ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-2048"]:
        name = new_key(vault, key_type=kind)
        k = vault.transit.read_key(name)["data"]
        assert (k["type"], k["supports_signing"]) == (kind, True)
        # Deviation "rsa": Strongroom's Transit RSA keys sign; OpenBao's also encrypt.
        rsa_encrypts = kind.startswith("rsa") and not vault.strongroom
        assert k["supports_encryption"] == rsa_encrypts
        entry = k["keys"]["1"]
        assert entry["public_key"]
        if kind == "ed25519":
            assert len(base64.b64decode(entry["public_key"])) == 32
        else:
            assert entry["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    chacha = new_key(vault, key_type="chacha20-poly1305", derived=True)
    k = vault.transit.read_key(chacha)["data"]
    assert (k["type"], k["supports_encryption"], k["supports_derivation"]) == ("chacha20-poly1305", True, True)
    ct = vault.transit.encrypt_data(chacha, plaintext=B(b"stream"), context=B(b"c"))["data"]["ciphertext"]
    assert vault.transit.decrypt_data(chacha, ciphertext=ct, context=B(b"c"))["data"]["plaintext"] == B(b"stream")
    # Deviation "key types": AES-128 keys are not offered by Strongroom (hvac refuses the
    # type on its side, so the API is called directly).
    status, body = vault.raw("POST", f"/v1/transit/keys/{next(names)}", {"type": "aes128-gcm96"})
    assert status == (400 if vault.strongroom else 200)
    status, body = vault.raw("POST", f"/v1/transit/keys/{next(names)}", {"type": "no-such-type"})
    assert (status, body["errors"]) == (400, ["unknown key type no-such-type"])


# ---- encrypt / decrypt ----


def test_encrypt_decrypt_round_trip(vault):
    name = new_key(vault)
    out = vault.transit.encrypt_data(name, plaintext=B(b"hello transit"))["data"]
    assert out["ciphertext"].startswith("vault:v1:") and out["key_version"] == 1
    back = vault.transit.decrypt_data(name, ciphertext=out["ciphertext"])["data"]
    assert base64.b64decode(back["plaintext"]) == b"hello transit"
    # Same plaintext, fresh ciphertext each time.
    assert vault.transit.encrypt_data(name, plaintext=B(b"hello transit"))["data"]["ciphertext"] != out["ciphertext"]
    # An empty plaintext round-trips.
    empty = vault.transit.encrypt_data(name, plaintext="")["data"]["ciphertext"]
    assert vault.transit.decrypt_data(name, ciphertext=empty)["data"]["plaintext"] == ""


def test_upsert_on_encrypt(vault):
    name = next(names)
    ct = vault.transit.encrypt_data(name, plaintext=B(b"x"))["data"]["ciphertext"]
    assert vault.transit.read_key(name)["data"]["type"] == "aes256-gcm96"
    assert base64.b64decode(vault.transit.decrypt_data(name, ciphertext=ct)["data"]["plaintext"]) == b"x"
    # With a context, the key made on the way is derived.
    dname = next(names)
    vault.transit.encrypt_data(dname, plaintext=B(b"x"), context=B(b"tenant-1"))
    assert vault.transit.read_key(dname)["data"]["derived"] is True


def test_derived_keys_bind_the_context(vault):
    name = new_key(vault, derived=True)
    k = vault.transit.read_key(name)["data"]
    assert (k["derived"], k["kdf"]) == (True, "hkdf_sha256")
    ct = vault.transit.encrypt_data(name, plaintext=B(b"tenant data"), context=B(b"tenant-a"))["data"]["ciphertext"]
    assert base64.b64decode(vault.transit.decrypt_data(name, ciphertext=ct, context=B(b"tenant-a"))["data"]["plaintext"]) == b"tenant data"
    with pytest.raises(hx.InvalidRequest):
        vault.transit.decrypt_data(name, ciphertext=ct, context=B(b"tenant-b"))
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.encrypt_data(name, plaintext=B(b"x"))
    assert errors_of(e)[0].startswith("missing 'context' for key derivation")
    # A context given to a key that is not derived is ignored.
    plain = new_key(vault)
    ct = vault.transit.encrypt_data(plain, plaintext=B(b"y"), context=B(b"ignored"))["data"]["ciphertext"]
    assert base64.b64decode(vault.transit.decrypt_data(plain, ciphertext=ct)["data"]["plaintext"]) == b"y"


def test_associated_data(vault):
    name = new_key(vault)
    ct = vault.transit.encrypt_data(name, plaintext=B(b"z"), associated_data=B(b"row-7"))["data"]["ciphertext"]
    assert vault.transit.decrypt_data(name, ciphertext=ct, associated_data=B(b"row-7"))["data"]["plaintext"] == B(b"z")
    with pytest.raises(hx.InvalidRequest):
        vault.transit.decrypt_data(name, ciphertext=ct, associated_data=B(b"row-8"))
    with pytest.raises(hx.InvalidRequest):
        vault.transit.decrypt_data(name, ciphertext=ct)


def test_bad_ciphertexts(vault):
    name = new_key(vault)
    ct = vault.transit.encrypt_data(name, plaintext=B(b"secret"))["data"]["ciphertext"]
    cases = {
        "abc": "invalid ciphertext: no prefix",
        "vault:v1:%%%": "invalid ciphertext: could not decode base64",
        "vault:v9:" + ct.split(":")[2]: "invalid ciphertext: version is too new",
    }
    for bad, msg in cases.items():
        with pytest.raises(hx.InvalidRequest) as e:
            vault.transit.decrypt_data(name, ciphertext=bad)
        assert errors_of(e) == [msg], bad
    raw = bytearray(base64.b64decode(ct.split(":")[2]))
    raw[-1] ^= 1
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.decrypt_data(name, ciphertext="vault:v1:" + B(bytes(raw)))
    assert errors_of(e) == ["cipher: message authentication failed"]
    # Another key's ciphertext does not open here.
    other = new_key(vault)
    with pytest.raises(hx.InvalidRequest):
        vault.transit.decrypt_data(other, ciphertext=ct)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.decrypt_data("missing-key", ciphertext=ct)
    assert errors_of(e) == ["encryption key not found"]
    status, body = vault.raw("POST", f"/v1/transit/encrypt/{name}", {})
    assert (status, body["errors"]) == (400, ["missing plaintext to encrypt"])


def test_rotation_and_min_decryption_version(vault):
    name = new_key(vault)
    v1 = vault.transit.encrypt_data(name, plaintext=B(b"old"))["data"]["ciphertext"]
    vault.transit.rotate_key(name)
    out = vault.transit.encrypt_data(name, plaintext=B(b"new"))["data"]
    assert out["ciphertext"].startswith("vault:v2:") and out["key_version"] == 2
    assert vault.transit.decrypt_data(name, ciphertext=v1)["data"]["plaintext"] == B(b"old")

    re = vault.transit.rewrap_data(name, ciphertext=v1)["data"]
    assert re["ciphertext"].startswith("vault:v2:") and re["key_version"] == 2
    assert vault.transit.decrypt_data(name, ciphertext=re["ciphertext"])["data"]["plaintext"] == B(b"old")

    vault.transit.update_key_configuration(name, min_decryption_version=2)
    k = vault.transit.read_key(name)["data"]
    assert (k["min_decryption_version"], list(k["keys"])) == (2, ["2"])
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.decrypt_data(name, ciphertext=v1)
    assert errors_of(e) == ["ciphertext or signature version is disallowed by policy (too old)"]
    vault.transit.update_key_configuration(name, min_decryption_version=1)
    assert vault.transit.decrypt_data(name, ciphertext=v1)["data"]["plaintext"] == B(b"old")

    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.encrypt_data(name, plaintext=B(b"x"), key_version=3)
    assert errors_of(e) == ["requested version for encryption is higher than the latest key version"]
    # key_version naming the latest version is accepted everywhere.
    assert vault.transit.encrypt_data(name, plaintext=B(b"x"), key_version=2)["data"]["key_version"] == 2
    # Deviation "key_version": Strongroom encrypts only with the current version.
    if vault.strongroom:
        with pytest.raises(hx.InvalidRequest):
            vault.transit.encrypt_data(name, plaintext=B(b"x"), key_version=1)
    else:
        assert vault.transit.encrypt_data(name, plaintext=B(b"x"), key_version=1)["data"]["key_version"] == 1


def test_batches(vault):
    name = new_key(vault)
    ok = vault.transit.encrypt_data(name, batch_input=[{"plaintext": B(b"a"), "reference": "r1"}, {"plaintext": B(b"b")}])["data"]
    results = ok["batch_results"]
    assert [r["reference"] for r in results] == ["r1", ""]
    assert all(r["ciphertext"].startswith("vault:v1:") for r in results)
    back = vault.transit.decrypt_data(name, batch_input=[{"ciphertext": r["ciphertext"]} for r in results])["data"]["batch_results"]
    assert [base64.b64decode(r["plaintext"]) for r in back] == [b"a", b"b"]

    # One bad item: the batch answers 400 with every item's result, good ones included.
    status, body = vault.raw("POST", f"/v1/transit/decrypt/{name}", {"batch_input": [{"ciphertext": results[0]["ciphertext"]}, {"ciphertext": "garbage"}]})
    assert status == 400
    items = body["data"]["batch_results"]
    assert items[0]["plaintext"] == B(b"a") and "error" not in items[0]
    assert items[1]["error"] == "invalid ciphertext: no prefix" and items[1]["plaintext"] == ""
    # ... or the code asked for, when some items succeeded.
    status, body = vault.raw(
        "POST",
        f"/v1/transit/encrypt/{name}",
        {"batch_input": [{"plaintext": B(b"a")}, {"plaintext": "%%%"}], "partial_failure_response_code": 207},
    )
    assert status == 207 and "error" in body["data"]["batch_results"][1]
    # Rewrap batches answer 200 whatever their items do.
    status, body = vault.raw("POST", f"/v1/transit/rewrap/{name}", {"batch_input": [{"ciphertext": results[0]["ciphertext"]}, {"ciphertext": "garbage"}]})
    assert status == 200
    assert body["data"]["batch_results"][0]["ciphertext"].startswith("vault:v1:")
    assert "error" in body["data"]["batch_results"][1]
    status, body = vault.raw("POST", f"/v1/transit/encrypt/{name}", {"batch_input": []})
    assert (status, body["errors"]) == (400, ["missing batch input to process"])


def test_data_keys(vault):
    name = new_key(vault)
    out = vault.transit.generate_data_key(name, key_type="plaintext")["data"]
    pt = base64.b64decode(out["plaintext"])
    assert len(pt) == 32 and out["ciphertext"].startswith("vault:v1:")
    assert base64.b64decode(vault.transit.decrypt_data(name, ciphertext=out["ciphertext"])["data"]["plaintext"]) == pt
    wrapped = vault.transit.generate_data_key(name, key_type="wrapped", bits=512)["data"]
    assert "plaintext" not in wrapped
    assert len(base64.b64decode(vault.transit.decrypt_data(name, ciphertext=wrapped["ciphertext"])["data"]["plaintext"])) == 64
    status, body = vault.raw("POST", f"/v1/transit/datakey/plaintext/{name}", {"bits": 100})
    assert status == 400
    status, body = vault.raw("POST", f"/v1/transit/datakey/other/{name}", {})
    assert (status, body["errors"]) == (400, ["Invalid path, must be 'plaintext' or 'wrapped'"])


def test_random(vault):
    assert len(base64.b64decode(vault.transit.generate_random_bytes(n_bytes=16)["data"]["random_bytes"])) == 16
    hex_out = vault.transit.generate_random_bytes(n_bytes=8, output_format="hex")["data"]["random_bytes"]
    assert len(hex_out) == 16 and int(hex_out, 16) >= 0
    status, body = vault.raw("POST", "/v1/transit/random/24", {})
    assert status == 200 and len(base64.b64decode(body["data"]["random_bytes"])) == 24
    # Deviation "random": Strongroom hands out at most 1024 bytes per request.
    status, _ = vault.raw("POST", "/v1/transit/random", {"bytes": 4096})
    assert status == (400 if vault.strongroom else 200)


# ---- auth, errors, sys ----


def test_tokens_and_permissions(vault):
    for token in (None, "not-a-token"):
        status, body = vault.raw("POST", "/v1/transit/encrypt/any", {"plaintext": B(b"x")}, token=token)
        assert status == 403 and "permission denied" in body["errors"][0]
    assert vault.client.is_authenticated()
    assert "root" in vault.client.auth.token.lookup_self()["data"]["policies"]
    assert not hvac.Client(url=vault.url, token="not-a-token").is_authenticated()
    # A token that no policy lets use Transit.
    if vault.strongroom:
        status, _ = vault.proc.native("POST", "/v1/principals", {"name": "transit-nobody", "kind": "workload", "roles": []})
        assert status == 201
        status, tok = vault.proc.native("POST", "/v1/principals/transit-nobody/tokens", {"ttl": "1h"})
        weak = tok["token"]
    else:
        weak = vault.client.auth.token.create(policies=["default"])["auth"]["client_token"]
    name = new_key(vault)
    with pytest.raises(hx.Forbidden):
        hvac.Client(url=vault.url, token=weak).secrets.transit.encrypt_data(name, plaintext=B(b"x"))


def test_paths_and_bodies(vault):
    status, body = vault.raw("POST", "/v1/transit/bogus/path", {})
    assert (status, body["errors"]) == (404, ["1 error occurred:\n\t* unsupported path\n\n"])
    status, body = vault.raw("GET", "/v1/transit/encrypt/k", None)
    assert status == 405
    status, body = vault.raw("POST", "/v1/transit/encrypt/k", b"{not json")
    assert status == 400 and body["errors"]
    # Unknown parameters are ignored with a warning.
    name = new_key(vault)
    status, body = vault.raw("POST", f"/v1/transit/encrypt/{name}", {"plaintext": B(b"x"), "colour": "blue"})
    assert status == 200
    assert any("unrecognized parameters" in w and "colour" in w for w in body["warnings"])


def test_sys_mounts(vault):
    mounts = vault.client.sys.list_mounted_secrets_engines()
    assert mounts["data"]["transit/"]["type"] == "transit"
    assert mounts["transit/"]["type"] == "transit"  # sys/ answers copy data to the top level
    with pytest.raises(hx.InvalidRequest) as e:
        vault.client.sys.enable_secrets_engine("transit")
    assert "path is already in use at transit/" in errors_of(e)[0]


# ---- Strongroom only: one key store for every protocol ----


def test_transit_keys_are_strongroom_keys(vault):
    if not vault.strongroom:
        pytest.skip("Strongroom's own API")
    name = new_key(vault)
    ct = vault.transit.encrypt_data(name, plaintext=B(b"shared"))["data"]["ciphertext"]
    status, key = vault.proc.native("GET", f"/v1/keyrings/transit/keys/{name}")
    assert status == 200 and key["algorithm"] == "aes-256-gcm"
    # The payload is a Strongroom ciphertext, decryptable through the native API.
    status, out = vault.proc.native("POST", "/v1/crypto/decrypt", {"ciphertext": ct.split(":", 2)[2]})
    assert status == 200 and base64.b64decode(out["plaintext"]) == b"shared"
    # A native rotation is a Transit rotation.
    assert vault.proc.native("POST", f"/v1/keyrings/transit/keys/{name}/versions", {})[0] == 201
    assert vault.transit.read_key(name)["data"]["latest_version"] == 2
    # Disabling the key in Strongroom stops Transit at once.
    assert vault.proc.native("POST", f"/v1/keyrings/transit/keys/{name}/disable")[0] == 200
    with pytest.raises(hx.InvalidRequest):
        vault.transit.decrypt_data(name, ciphertext=ct)
    events = [e for e in vault.proc.audit() if e["protocol"] == "vault-transit"]
    assert {"encrypt", "decrypt", "create-key"} <= {e["operation"] for e in events}
    assert not any(B(b"shared") in json.dumps(e) for e in events)


# ---- signatures, HMAC, hash ----


def verify_locally(kind, public_key, message, signature_b64, pkcs1=False):
    """Checks a Transit signature with Python's `cryptography`, independent of both servers."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

    sig = base64.b64decode(signature_b64)
    if kind == "ed25519":
        ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key)).verify(sig, message)
        return
    key = serialization.load_pem_public_key(public_key.encode())
    if kind.startswith("ecdsa"):
        key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    elif pkcs1:
        key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(sig, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256())


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "rsa-2048"])
def test_sign_and_verify(vault, kind):
    name = new_key(vault, key_type=kind)
    msg = b"release 1.2.3"
    out = vault.transit.sign_data(name, hash_input=B(msg))["data"]
    assert out["signature"].startswith("vault:v1:") and out["key_version"] == 1
    assert vault.transit.verify_signed_data(name, hash_input=B(msg), signature=out["signature"])["data"]["valid"] is True
    assert vault.transit.verify_signed_data(name, hash_input=B(b"release 1.2.4"), signature=out["signature"])["data"]["valid"] is False
    public = vault.transit.read_key(name)["data"]["keys"]["1"]["public_key"]
    verify_locally(kind, public, msg, out["signature"].split(":", 2)[2])
    if kind == "rsa-2048":
        p1 = vault.transit.sign_data(name, hash_input=B(msg), signature_algorithm="pkcs1v15")["data"]["signature"]
        verify_locally(kind, public, msg, p1.split(":", 2)[2], pkcs1=True)
        assert vault.transit.verify_signed_data(name, hash_input=B(msg), signature=p1, signature_algorithm="pkcs1v15")["data"]["valid"]
    if kind == "ecdsa-p256":
        import hashlib

        digest = hashlib.sha256(msg).digest()
        pre = vault.transit.sign_data(name, hash_input=B(digest), prehashed=True)["data"]["signature"]
        assert vault.transit.verify_signed_data(name, hash_input=B(msg), signature=pre)["data"]["valid"]
        jws = vault.transit.sign_data(name, hash_input=B(msg), marshaling_algorithm="jws")["data"]["signature"]
        raw = base64.urlsafe_b64decode(jws.split(":", 2)[2] + "==")
        assert len(raw) == 64
        assert vault.transit.verify_signed_data(name, hash_input=B(msg), signature=jws, marshaling_algorithm="jws")["data"]["valid"]
    # After a rotation, old signatures still verify; min_decryption_version retires them.
    vault.transit.rotate_key(name)
    assert vault.transit.sign_data(name, hash_input=B(msg))["data"]["signature"].startswith("vault:v2:")
    assert vault.transit.verify_signed_data(name, hash_input=B(msg), signature=out["signature"])["data"]["valid"]
    vault.transit.update_key_configuration(name, min_decryption_version=2)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.verify_signed_data(name, hash_input=B(msg), signature=out["signature"])
    assert errors_of(e) == ["ciphertext or signature version is disallowed by policy (too old)"]


def test_signature_refusals(vault):
    aes = new_key(vault)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.sign_data(aes, hash_input=B(b"x"))
    assert errors_of(e) == ["key type aes256-gcm96 does not support signing"]
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.sign_data("missing-signer", hash_input=B(b"x"))
    assert errors_of(e) == ["signing key not found"]
    ed = new_key(vault, key_type="ed25519")
    status, body = vault.raw("POST", f"/v1/transit/verify/{ed}", {"input": B(b"x"), "signature": "garbage"})
    assert (status, body["errors"]) == (400, ["invalid signature: no prefix"])
    status, body = vault.raw("POST", f"/v1/transit/verify/{ed}", {"input": B(b"x")})
    assert (status, body["errors"]) == (400, ["neither a 'signature' nor an 'hmac' were given to verify"])
    # A well-formed signature that is not valid is an answer, not an error.
    status, body = vault.raw("POST", f"/v1/transit/verify/{ed}", {"input": B(b"x"), "signature": "vault:v1:" + B(bytes(64))})
    assert (status, body["data"]["valid"]) == (200, False)
    # Deviation "ecdsa hash": Strongroom's ECDSA keys sign with their curve's hash.
    p384 = new_key(vault, key_type="ecdsa-p384")
    status, _ = vault.raw("POST", f"/v1/transit/sign/{p384}/sha2-384", {"input": B(b"x")})
    assert status == 200
    status, _ = vault.raw("POST", f"/v1/transit/sign/{p384}/sha2-256", {"input": B(b"x")})
    assert status == (400 if vault.strongroom else 200)


def test_sign_batches(vault):
    name = new_key(vault, key_type="ed25519")
    out = vault.transit.sign_data(name, batch_input=[{"input": B(b"a"), "reference": "1"}, {"input": B(b"b")}])["data"]["batch_results"]
    assert [r["reference"] for r in out] == ["1", ""] and all(r["signature"].startswith("vault:v1:") for r in out)
    status, body = vault.raw(
        "POST",
        f"/v1/transit/verify/{name}",
        {"batch_input": [{"input": B(b"a"), "signature": out[0]["signature"]}, {"input": B(b"a"), "signature": out[1]["signature"]}]},
    )
    assert status == 200
    assert [r.get("valid") for r in body["data"]["batch_results"]] == [True, False]


def test_hmac(vault):
    # hvac refuses key_type hmac on its side; the API takes it.
    name = next(names)
    assert vault.raw("POST", f"/v1/transit/keys/{name}", {"type": "hmac", "key_size": 32})[0] == 200
    k = vault.transit.read_key(name)["data"]
    assert (k["type"], "keys" in k) == ("hmac", False)
    out = vault.transit.generate_hmac(name, hash_input=B(b"payload"))["data"]["hmac"]
    assert out.startswith("vault:v1:") and len(base64.b64decode(out.split(":", 2)[2])) == 32
    assert vault.transit.generate_hmac(name, hash_input=B(b"payload"))["data"]["hmac"] == out
    assert vault.transit.verify_signed_data(name, hash_input=B(b"payload"), hmac=out)["data"]["valid"] is True
    assert vault.transit.verify_signed_data(name, hash_input=B(b"other"), hmac=out)["data"]["valid"] is False
    status, body = vault.raw("POST", f"/v1/transit/verify/{name}", {"input": B(b"x"), "hmac": "nope"})
    assert (status, body["errors"]) == (400, ["invalid HMAC to verify: no prefix"])
    batch = vault.raw("POST", f"/v1/transit/hmac/{name}", {"batch_input": [{"input": B(b"a")}, {"input": "%%"}]})
    assert batch[0] == 200 and "hmac" in batch[1]["data"]["batch_results"][0] and "error" in batch[1]["data"]["batch_results"][1]
    # Deviation "hmac": Strongroom computes HMACs with hmac keys only.
    aes = new_key(vault)
    status, _ = vault.raw("POST", f"/v1/transit/hmac/{aes}", {"input": B(b"x")})
    assert status == (400 if vault.strongroom else 200)


def test_hash(vault):
    import hashlib

    for alg, fn in [("sha2-256", hashlib.sha256), ("sha2-512", hashlib.sha512), ("sha3-256", hashlib.sha3_256), ("sha2-224", hashlib.sha224)]:
        status, body = vault.raw("POST", f"/v1/transit/hash/{alg}", {"input": B(b"abc")})
        assert (status, body["data"]["sum"]) == (200, fn(b"abc").hexdigest()), alg
    out = vault.transit.hash_data(B(b"abc"), algorithm="sha2-384", output_format="base64")["data"]["sum"]
    assert base64.b64decode(out) == hashlib.sha384(b"abc").digest()
    status, _ = vault.raw("POST", "/v1/transit/hash/md5", {"input": B(b"abc")})
    assert status == 400
    status, body = vault.raw("POST", "/v1/transit/hash", {"input": B(b"abc")}, token=None)
    assert status == 403


# ---- export ----


def open_locally(v, key, ct):
    """Decrypts a Transit ciphertext with exported key material, following each server's
    published format: Strongroom's ciphertext v1 (docs/formats/ciphertext-v1.md) or Vault's
    nonce‖ciphertext‖tag under the key itself."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    blob = base64.b64decode(ct.split(":", 2)[2])
    if not v.strongroom:
        return AESGCM(key).decrypt(blob[:12], blob[12:], None)
    header, salt, nonce, body = blob[:52], blob[24:40], blob[40:52], blob[52:]
    info = b"strongroom/ciphertext/v1" + blob[4:20] + blob[20:24]
    mk = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)
    return AESGCM(mk).decrypt(nonce, body, header + (0).to_bytes(4, "big"))


def test_export(vault):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    name = new_key(vault, exportable=True)
    vault.transit.rotate_key(name)
    ct = vault.transit.encrypt_data(name, plaintext=B(b"portable"))["data"]["ciphertext"]
    out = vault.transit.export_key(name, key_type="encryption-key")["data"]
    assert (out["name"], out["type"], sorted(out["keys"])) == (name, "aes256-gcm96", ["1", "2"])
    key2 = base64.b64decode(out["keys"]["2"])
    assert len(key2) == 32 and open_locally(vault, key2, ct) == b"portable"
    latest = vault.transit.export_key(name, key_type="encryption-key", version="latest")["data"]["keys"]
    assert latest == {"2": out["keys"]["2"]}

    sealed = new_key(vault)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.export_key(sealed, key_type="encryption-key")
    assert errors_of(e) == ["private key material is not exportable"]

    ed = new_key(vault, key_type="ed25519", exportable=True)
    raw = base64.b64decode(vault.transit.export_key(ed, key_type="signing-key")["data"]["keys"]["1"])
    assert len(raw) == 64
    sig = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]).sign(b"signed outside")
    assert vault.transit.verify_signed_data(ed, hash_input=B(b"signed outside"), signature="vault:v1:" + B(sig))["data"]["valid"]

    p256 = new_key(vault, key_type="ecdsa-p256", exportable=True)
    pem = vault.transit.export_key(p256, key_type="signing-key")["data"]["keys"]["1"]
    # Deviation "export": ECDSA and RSA keys come out as PKCS#8 ("PRIVATE KEY"); Vault's
    # ECDSA keys as SEC1 ("EC PRIVATE KEY"). Both load the same way.
    assert pem.startswith("-----BEGIN PRIVATE KEY-----" if vault.strongroom else "-----BEGIN EC PRIVATE KEY-----")
    priv = serialization.load_pem_private_key(pem.encode(), password=None)
    sig = priv.sign(b"also outside", ec.ECDSA(hashes.SHA256()))
    assert vault.transit.verify_signed_data(p256, hash_input=B(b"also outside"), signature="vault:v1:" + B(sig))["data"]["valid"]
    with pytest.raises(hx.InvalidRequest):
        vault.transit.export_key(p256, key_type="encryption-key")


def test_sizes(vault):
    name = new_key(vault)
    # Deviation "sizes": Strongroom encrypts at most 64 KiB per plaintext and takes bodies
    # of at most 4 MiB; OpenBao's limits are larger.
    big = B(bytes(64 * 1024 + 1))
    status, body = vault.raw("POST", f"/v1/transit/encrypt/{name}", {"plaintext": big})
    assert status == (400 if vault.strongroom else 200)
    if vault.strongroom:
        assert "at most 65536 bytes" in body["errors"][0]
        # A body over the limit is refused before it is read: the client sees a 400, or the
        # connection closed under it while it was still sending.
        try:
            status, body = vault.raw("POST", f"/v1/transit/encrypt/{name}", b'{"plaintext":"' + b"A" * (5 * 1024 * 1024) + b'"}')
            assert status == 400 and "larger than" in body["errors"][0]
        except urllib.error.URLError as e:
            assert isinstance(e.reason, (BrokenPipeError, ConnectionResetError)), e
        # Nothing was lost: the key still works.
        assert vault.transit.encrypt_data(name, plaintext=B(b"ok"))["data"]["key_version"] == 1
    # Both refuse a batch of 1001 items (OpenBao for the JSON's complexity).
    status, body = vault.raw("POST", f"/v1/transit/encrypt/{name}", {"batch_input": [{"plaintext": B(b"x")}] * 1001})
    assert status == 400 and body["errors"]


def test_concurrent_upserts_make_one_key(vault):
    import concurrent.futures

    name = next(names)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        cts = list(pool.map(lambda i: vault.transit.encrypt_data(name, plaintext=B(bytes([i])))["data"]["ciphertext"], range(32)))
    assert vault.transit.read_key(name)["data"]["latest_version"] == 1
    assert [base64.b64decode(vault.transit.decrypt_data(name, ciphertext=ct)["data"]["plaintext"]) for ct in cts] == [bytes([i]) for i in range(32)]


def test_trim(vault):
    name = new_key(vault)
    v1 = vault.transit.encrypt_data(name, plaintext=B(b"one"))["data"]["ciphertext"]
    vault.transit.rotate_key(name)
    vault.transit.rotate_key(name)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.trim_key(name, min_version=2)
    assert errors_of(e) == ["minimum available version cannot be set when minimum encryption version is not set"]
    vault.transit.update_key_configuration(name, min_encryption_version=3)
    with pytest.raises(hx.InvalidRequest) as e:
        vault.transit.trim_key(name, min_version=2)
    assert errors_of(e) == ["minimum available version cannot be greater than minimum decryption version"]
    vault.transit.update_key_configuration(name, min_decryption_version=2)
    k = vault.transit.trim_key(name, min_version=2)["data"]
    assert (k["min_available_version"], sorted(k["keys"])) == (2, ["2", "3"])
    with pytest.raises(hx.InvalidRequest):
        vault.transit.decrypt_data(name, ciphertext=v1)
    # Deviation "trim": Strongroom destroys trimmed versions after its one-day window.
    if vault.strongroom:
        status, v = vault.proc.native("GET", f"/v1/keyrings/transit/keys/{name}/versions/1")
        assert (status, v["state"]) == (200, "destroy_scheduled") and v["destroy_time"]
    status, body = vault.raw("POST", f"/v1/transit/keys/{name}/trim", {})
    assert (status, body["errors"]) == (400, ["missing min_available_version"])
    status, body = vault.raw("POST", f"/v1/transit/keys/{name}/trim", {"min_available_version": 1})
    assert (status, body["errors"]) == (400, ["minimum available version cannot be decremented"])
