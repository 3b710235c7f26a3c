"""External keys through every protocol, with real clients: a Strongroom key bound to an AWS
KMS key on moto's server and one bound to a Transit key on OpenBao, used through the native
API, the AWS KMS API (boto3) and the Vault Transit API (hvac). The material stays at the
provider: moto itself opens what Strongroom's ciphertext carries (docs/providers.md)."""

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import hvac
import pytest

from conftest import ROOT_TOKEN, OpenBao, Server

REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    port = free_port()
    moto_proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto_url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(moto_url + "/moto-api/", timeout=1)
            break
        except Exception:
            time.sleep(0.05)
    moto = boto3.client(
        "kms",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="AKIDMOTO",
        aws_secret_access_key="secret",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    bao = OpenBao()
    for name, kind in (("payments", "aes256-gcm96"), ("signer", "ecdsa-p256")):
        req = urllib.request.Request(bao.url + f"/v1/transit/keys/{name}", data=('{"type":"%s"}' % kind).encode(), method="POST")
        req.add_header("X-Vault-Token", bao.token)
        urllib.request.urlopen(req).close()
    d = tmp_path_factory.mktemp("external")
    (d / "credentials").write_text("[default]\naws_access_key_id = AKIDMOTO\naws_secret_access_key = secret\n")
    (d / "token").write_text(bao.token)
    (d / "providers.toml").write_text(
        f'[providers.aws]\nkind = "aws-kms"\nregion = "{REGION}"\nendpoint = "{moto_url}"\nshared_credentials_file = "{d / "credentials"}"\n\n'
        f'[providers.bao]\nkind = "vault-transit"\naddress = "{bao.url}"\ntoken_file = "{d / "token"}"\n'
    )
    server = Server(["--providers", str(d / "providers.toml")])
    yield server, moto
    server.stop()
    bao.stop()
    moto_proc.terminate()
    moto_proc.wait(timeout=10)


def b64(b):
    return base64.b64encode(b).decode()


def make_keys(server, moto):
    aws_key = moto.create_key()["KeyMetadata"]["KeyId"]
    assert server.native("POST", "/v1/keyrings", {"name": "transit"})[0] in (201, 409)
    status, ext = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "ext-aws", "protection": "external", "provider": "aws", "provider_key": aws_key},
    )
    assert status == 201, ext
    status, bao_key = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "ext-bao", "protection": "external", "provider": "bao", "provider_key": "payments"},
    )
    assert status == 201, bao_key
    return aws_key, ext, bao_key


def test_external_keys_work_through_every_protocol(peers):
    server, moto = peers
    aws_key, ext, bao_key = make_keys(server, moto)
    assert (ext["protection"], ext["provider"], ext["provider_key"]) == ("external", "aws", aws_key)

    # Native API.
    status, out = server.native("POST", "/v1/crypto/encrypt", {"key": "transit/ext-aws", "plaintext": b64(b"native"), "context": {"app": "x"}})
    assert status == 200, out
    status, back = server.native("POST", "/v1/crypto/decrypt", {"ciphertext": out["ciphertext"], "context": {"app": "x"}})
    assert status == 200 and base64.b64decode(back["plaintext"]) == b"native", back

    # The material is moto's: the provider's bytes inside Strongroom's ciphertext open at
    # moto itself, under the caller's context plus the key id Strongroom binds.
    blob = base64.b64decode(out["ciphertext"])
    assert blob[:4] == b"SR\x01\x10"
    opened = moto.decrypt(CiphertextBlob=blob[52:], EncryptionContext={"app": "x", "strongroom:key-id": ext["id"]})
    assert opened["Plaintext"] == b"native"

    # AWS KMS API through boto3: by key id, with a context, and data keys.
    kms = server.client()
    ct = kms.encrypt(KeyId=ext["id"], Plaintext=b"via boto3", EncryptionContext={"tenant": "acme"})["CiphertextBlob"]
    got = kms.decrypt(CiphertextBlob=ct, EncryptionContext={"tenant": "acme"})
    assert got["Plaintext"] == b"via boto3"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.decrypt(CiphertextBlob=ct, EncryptionContext={"tenant": "globex"})
    assert e.value.response["Error"]["Code"] == "InvalidCiphertextException"
    dk = kms.generate_data_key(KeyId=ext["id"], KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]

    # Vault Transit API through hvac: the Transit key of the same name in ring `transit`.
    vault = hvac.Client(url=server.url, token=ROOT_TOKEN)
    for name in ("ext-aws", "ext-bao"):
        enc = vault.secrets.transit.encrypt_data(name, plaintext=b64(b"via hvac " + name.encode()))
        text = enc["data"]["ciphertext"]
        assert text.startswith("vault:v1:"), text
        dec = vault.secrets.transit.decrypt_data(name, ciphertext=text)
        assert base64.b64decode(dec["data"]["plaintext"]) == b"via hvac " + name.encode()

    # Every use is audited with the provider and, for AWS, its request id.
    events = [e for e in server.audit(operation="encrypt") if e.get("key") == "ext-aws" and e["outcome"] == "ok"]
    assert {e["protocol"] for e in events} >= {"native", "aws", "vault-transit"}, events
    for e in events:
        assert e["providers"][0]["provider"] == "aws" and e["providers"][0]["key"] == aws_key
        assert e["providers"][0]["request_id"], e


def test_strongroom_governs_external_keys(peers):
    server, moto = peers
    aws_key = moto.create_key()["KeyMetadata"]["KeyId"]
    status, made = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "governed", "protection": "external", "provider": "aws", "provider_key": aws_key},
    )
    assert status == 201, made
    key_id = made["id"]
    kms = server.client()
    ct = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    # Disabled in Strongroom: refused on every protocol, though moto's key is enabled.
    assert server.native("POST", "/v1/keyrings/transit/keys/governed/disable")[0] == 200
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.decrypt(CiphertextBlob=ct)
    assert e.value.response["Error"]["Code"] == "DisabledException"
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=server.url, token=ROOT_TOKEN).secrets.transit.encrypt_data("governed", plaintext=b64(b"y"))
    assert server.native("POST", "/v1/keyrings/transit/keys/governed/enable")[0] == 200
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"x"
    # Gone at the provider (bound through an alias that is then deleted): a clear refusal
    # naming the provider, no server error. (moto does not refuse a disabled key's Encrypt.)
    moto.create_alias(AliasName="alias/governed", TargetKeyId=aws_key)
    status, made = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "by-alias", "protection": "external", "provider": "aws", "provider_key": "alias/governed"},
    )
    assert status == 201, made
    moto.delete_alias(AliasName="alias/governed")
    status, body = server.native("POST", "/v1/crypto/encrypt", {"key": "transit/by-alias", "plaintext": b64(b"z")})
    assert status == 409 and body["error"]["code"] == "invalid_state", body
    assert "aws" in body["error"]["message"] and "alias/governed" in body["error"]["message"], body
    # Rotation is the provider's; bad bindings are refused with the reason.
    status, body = server.native("POST", "/v1/keyrings/transit/keys/governed/versions", {})
    assert status == 409 and "rotates at its provider" in body["error"]["message"], body
    for extra, needle in [
        ({"provider": "nosuch", "provider_key": "k"}, "no provider"),
        ({"provider": "aws", "provider_key": "alias/does-not-exist"}, "cannot use this provider key"),
        ({"provider": "aws"}, "needs both provider and provider_key"),
        ({"provider": "aws", "provider_key": aws_key, "rotation_period": "30d"}, "rotates at its provider"),
        ({"protection": "quantum", "provider": "aws", "provider_key": aws_key}, "software, external or hsm"),
    ]:
        status, body = server.native("POST", "/v1/keyrings/transit/keys", {"name": "bad", **extra})
        assert status == 400 and needle in body["error"]["message"], (extra, body)
    assert server.native("GET", "/v1/keyrings/transit/keys/bad")[0] == 404


def test_external_signing_keys_sign_at_their_provider(peers):
    """Sign-verify keys bound to AWS (ECDSA P-256, RSA PKCS#1) and Transit (ECDSA P-256): the
    provider signs; the public key is the provider's; verify works here, offline and at the
    provider, through the native and the AWS APIs."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    server, moto = peers
    ec_key = moto.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    rsa_key = moto.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
    cases = [
        ("sig-ec", "ecdsa-p256-sha256", "aws", ec_key, "ECDSA_SHA_256"),
        # (RSA-PKCS#1: moto signs PSS with the largest salt, where AWS and Strongroom use
        # the hash's length, and re-hashes DIGEST messages; docs/providers.md.)
        ("sig-rsa", "rsa-pkcs1-2048-sha256", "aws", rsa_key, "RSASSA_PKCS1_V1_5_SHA_256"),
    ]
    for name, alg, provider, pkey, _ in cases:
        status, made = server.native(
            "POST",
            "/v1/keyrings/transit/keys",
            {"name": name, "purpose": "sign-verify", "algorithm": alg, "protection": "external", "provider": provider, "provider_key": pkey},
        )
        assert status == 201, made
        assert made["protection"] == "external"
    kms = server.client()
    for name, alg, provider, pkey, aws_alg in cases:
        # Native: sign here, verify here and offline with the provider's own public key.
        status, signed = server.native("POST", "/v1/crypto/sign", {"key": f"transit/{name}", "message": b64(b"release v1.2.3")})
        assert status == 200, signed
        sig = base64.b64decode(signed["signature"])
        status, ok = server.native("POST", "/v1/crypto/verify", {"key": f"transit/{name}", "message": b64(b"release v1.2.3"), "signature": signed["signature"]})
        assert status == 200 and ok["valid"] is True, ok
        status, bad = server.native("POST", "/v1/crypto/verify", {"key": f"transit/{name}", "message": b64(b"release v1.2.4"), "signature": signed["signature"]})
        assert status == 200 and bad["valid"] is False, bad
        status, pub = server.native("GET", f"/v1/keyrings/transit/keys/{name}/public-key")
        assert status == 200, pub
        assert base64.b64decode(pub["der"]) == moto.get_public_key(KeyId=pkey)["PublicKey"]
        key = serialization.load_der_public_key(base64.b64decode(pub["der"]))
        if alg.startswith("ecdsa"):
            key.verify(sig, b"release v1.2.3", ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, b"release v1.2.3", padding.PKCS1v15(), hashes.SHA256())
        # moto itself agrees.
        assert moto.verify(KeyId=pkey, Message=b"release v1.2.3", Signature=sig, SigningAlgorithm=aws_alg)["SignatureValid"]
        # The AWS API through boto3, by the Strongroom key's id.
        status, info = server.native("GET", f"/v1/keyrings/transit/keys/{name}")
        out = kms.sign(KeyId=info["id"], Message=b"via boto3", MessageType="RAW", SigningAlgorithm=aws_alg)
        assert kms.verify(KeyId=info["id"], Message=b"via boto3", Signature=out["Signature"], SigningAlgorithm=aws_alg)["SignatureValid"]
    # Audited with the provider and its request id.
    events = [e for e in server.audit(operation="sign") if e.get("key") == "sig-ec" and e["outcome"] == "ok"]
    assert events and all(e["providers"][0]["provider"] == "aws" and e["providers"][0]["request_id"] for e in events), events
    # A binding whose key type does not match the algorithm is refused, naming why.
    status, body = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "mismatch", "purpose": "sign-verify", "algorithm": "ecdsa-p256-sha256", "protection": "external", "provider": "aws", "provider_key": rsa_key},
    )
    assert status == 400 and "cannot use this provider key" in body["error"]["message"], body
    # Transit signs too (an ecdsa-p256 key of OpenBao).
    status, made = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "sig-bao", "purpose": "sign-verify", "algorithm": "ecdsa-p256-sha256", "protection": "external", "provider": "bao", "provider_key": "signer"},
    )
    assert status == 201, made
    status, signed = server.native("POST", "/v1/crypto/sign", {"key": "transit/sig-bao", "message": b64(b"from bao")})
    assert status == 200, signed
    status, ok = server.native("POST", "/v1/crypto/verify", {"key": "transit/sig-bao", "message": b64(b"from bao"), "signature": signed["signature"]})
    assert ok["valid"] is True, ok


def test_rotation_schedules_are_set_at_the_provider(peers):
    """update-key's rotation_period on a provider-held key sets the provider's own schedule
    (AWS EnableKeyRotation/DisableKeyRotation, Transit auto_rotate_period); Strongroom's
    scheduler leaves such keys alone."""
    server, moto = peers
    aws_key = moto.create_key()["KeyMetadata"]["KeyId"]
    status, made = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "rot-aws", "protection": "external", "provider": "aws", "provider_key": aws_key},
    )
    assert status == 201, made
    status, k = server.native("PATCH", "/v1/keyrings/transit/keys/rot-aws", {"rotation_period": "90d"})
    assert status == 200, k
    assert k["rotation_period"] == "90d" and k["next_rotation_time"] is None, k
    assert moto.get_key_rotation_status(KeyId=aws_key)["KeyRotationEnabled"] is True
    status, k = server.native("PATCH", "/v1/keyrings/transit/keys/rot-aws", {"rotation_period": None})
    assert status == 200 and k["rotation_period"] is None, k
    assert moto.get_key_rotation_status(KeyId=aws_key)["KeyRotationEnabled"] is False
    # Out of the provider's range: refused, nothing changed on either side.
    status, body = server.native("PATCH", "/v1/keyrings/transit/keys/rot-aws", {"rotation_period": "10d"})
    assert status == 400 and "90 to 2560" in body["error"]["message"], body
    assert moto.get_key_rotation_status(KeyId=aws_key)["KeyRotationEnabled"] is False
    status, body = server.native("PATCH", "/v1/keyrings/transit/keys/rot-aws", {"rotation_period": "90d", "next_rotation_time": "2030-01-01T00:00:00Z"})
    assert status == 400, body
    # Transit: auto_rotate_period.
    status, made = server.native(
        "POST",
        "/v1/keyrings/transit/keys",
        {"name": "rot-bao", "protection": "external", "provider": "bao", "provider_key": "payments"},
    )
    assert status == 201, made
    status, k = server.native("PATCH", "/v1/keyrings/transit/keys/rot-bao", {"rotation_period": "30d"})
    assert status == 200, k
    events = [e for e in server.audit(operation="update-key") if e.get("key") == "rot-bao" and e["outcome"] == "ok"]
    assert events[-1]["providers"][0]["provider"] == "bao", events
