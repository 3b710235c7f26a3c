"""The AWS KMS API through boto3, the real AWS SDK for Python, against the real binary.

Every refusal is checked for AWS's exception name (what SDK error handling keys on), and
refusals that could have changed something are followed by a read showing they did not."""

import base64
import datetime
import hashlib
import hmac
import json
import os
import time
import urllib.request

import botocore
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import ACCESS_KEY_ID, REGION, ROOT_TOKEN, SECRET, Server


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def raises(code, fn, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(*args, **kwargs)
    assert error_code(e) == code, e.value.response
    return e.value.response


def symmetric(kms, **kw):
    return kms.create_key(**kw)["KeyMetadata"]["KeyId"]


# ---- keys ----


def test_create_describe_and_list_keys(kms):
    md = kms.create_key(Description="orders", Tags=[{"TagKey": "team", "TagValue": "orders"}])[
        "KeyMetadata"
    ]
    assert md["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert md["KeyState"] == "Enabled" and md["Enabled"] is True
    assert md["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert md["Arn"] == f"arn:aws:kms:{REGION}:000000000000:key/{md['KeyId']}"
    assert md["Origin"] == "AWS_KMS" and md["KeyManager"] == "CUSTOMER"
    assert isinstance(md["CreationDate"], datetime.datetime)

    for ref in (md["KeyId"], md["Arn"]):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["Description"] == "orders"

    kms.update_key_description(KeyId=md["KeyId"], Description="orders v2")
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == "orders v2"

    # Pagination walks every key once.
    for _ in range(3):
        symmetric(kms)
    seen, marker = [], None
    while True:
        page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        assert len(page["Keys"]) <= 2
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert len(seen) == len(set(seen)) and md["KeyId"] in seen
    assert all(k["KeyArn"].endswith(k["KeyId"]) for k in kms.list_keys()["Keys"])
    raises("InvalidMarkerException", kms.list_keys, Marker="not-a-marker")


@pytest.mark.parametrize(
    "spec,usage,algorithms",
    [
        ("RSA_2048", "SIGN_VERIFY", "SigningAlgorithms"),
        ("RSA_3072", "ENCRYPT_DECRYPT", "EncryptionAlgorithms"),
        ("ECC_NIST_P256", "SIGN_VERIFY", "SigningAlgorithms"),
        ("ECC_NIST_P384", "SIGN_VERIFY", "SigningAlgorithms"),
        ("ECC_NIST_P521", "SIGN_VERIFY", "SigningAlgorithms"),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "SigningAlgorithms"),
        ("ML_DSA_65", "SIGN_VERIFY", "SigningAlgorithms"),
        ("ECC_NIST_P256", "KEY_AGREEMENT", "KeyAgreementAlgorithms"),
        ("HMAC_224", "GENERATE_VERIFY_MAC", "MacAlgorithms"),
        ("HMAC_256", "GENERATE_VERIFY_MAC", "MacAlgorithms"),
        ("HMAC_384", "GENERATE_VERIFY_MAC", "MacAlgorithms"),
        ("HMAC_512", "GENERATE_VERIFY_MAC", "MacAlgorithms"),
    ],
)
def test_key_specs(kms, spec, usage, algorithms):
    md = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    assert (md["KeySpec"], md["KeyUsage"]) == (spec, usage)
    assert md[algorithms], md


def test_create_key_refusals_create_nothing(kms):
    before = len(kms.list_keys(Limit=1000)["Keys"])
    raises("ValidationException", kms.create_key, KeySpec="ECC_NIST_P256")  # no SIGN_VERIFY
    raises("ValidationException", kms.create_key, KeySpec="HMAC_256", KeyUsage="ENCRYPT_DECRYPT")
    raises("ValidationException", kms.create_key, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="SIGN_VERIFY")
    raises("MalformedPolicyDocumentException", kms.create_key, Policy=json.dumps({"Version": "2012-10-17"}))
    raises("UnsupportedOperationException", kms.create_key, Origin="AWS_CLOUDHSM")
    raises("UnsupportedOperationException", kms.create_key, MultiRegion=True)
    raises("UnsupportedOperationException", kms.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY")
    # Tags that Strongroom's label rules cannot hold are refused, not altered.
    raises("TagException", kms.create_key, Tags=[{"TagKey": "Project Name", "TagValue": "x"}])
    raises("TagException", kms.create_key, Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}])
    assert len(kms.list_keys(Limit=1000)["Keys"]) == before


def test_tags(kms):
    key = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "orders"}])["KeyMetadata"]["KeyId"]
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "billing"}])
    tags = kms.list_resource_tags(KeyId=key)
    assert tags["Tags"] == [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "billing"}]
    assert tags["Truncated"] is False
    first = kms.list_resource_tags(KeyId=key, Limit=1)
    assert first["Tags"] == [{"TagKey": "env", "TagValue": "prod"}] and first["Truncated"]
    second = kms.list_resource_tags(KeyId=key, Limit=1, Marker=first["NextMarker"])
    assert second["Tags"] == [{"TagKey": "team", "TagValue": "billing"}] and not second["Truncated"]
    kms.untag_resource(KeyId=key, TagKeys=["env", "absent"])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "billing"}]
    # A tag Strongroom's label rules cannot hold changes nothing.
    raises("TagException", kms.tag_resource, KeyId=key, Tags=[{"TagKey": "env", "TagValue": "x"}, {"TagKey": "Bad Key", "TagValue": "x"}])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "billing"}]


def test_enable_and_disable(kms):
    key = symmetric(kms)
    ct = kms.encrypt(KeyId=key, Plaintext=b"before")["CiphertextBlob"]
    kms.disable_key(KeyId=key)
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and md["Enabled"] is False
    raises("DisabledException", kms.encrypt, KeyId=key, Plaintext=b"x")
    raises("DisabledException", kms.decrypt, CiphertextBlob=ct)
    kms.enable_key(KeyId=key)
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"before"


def test_schedule_and_cancel_key_deletion(server, kms):
    md = kms.create_key()["KeyMetadata"]
    key = md["KeyId"]
    kms.create_alias(AliasName="alias/leaving", TargetKeyId=key)
    blob = kms.encrypt(KeyId=key, Plaintext=b"keep me")["CiphertextBlob"]
    unchecked = server.client(parameter_validation=False)
    for days in (6, 31):
        raises("ValidationException", unchecked.schedule_key_deletion, KeyId=key, PendingWindowInDays=days)
    out = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    assert out["KeyId"] == md["Arn"]
    left = out["DeletionDate"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=6, hours=23) < left <= datetime.timedelta(days=7)
    described = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion" and described["Enabled"] is False
    assert described["DeletionDate"] == out["DeletionDate"]
    # Pending deletion: nothing may use or change the key.
    raises("KMSInvalidStateException", kms.encrypt, KeyId=key, Plaintext=b"x")
    raises("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    raises("KMSInvalidStateException", kms.enable_key, KeyId=key)
    raises("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key)
    raises("KMSInvalidStateException", kms.create_alias, AliasName="alias/late", TargetKeyId=key)
    raises("KMSInvalidStateException", kms.update_key_description, KeyId=key, Description="x")
    # Cancelled: back as Disabled, usable once enabled.
    assert kms.cancel_key_deletion(KeyId=key)["KeyId"] == md["Arn"]
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    raises("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=key)
    raises("DisabledException", kms.decrypt, CiphertextBlob=blob)
    kms.enable_key(KeyId=key)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"keep me"
    assert kms.encrypt(KeyId="alias/leaving", Plaintext=b"x")["KeyId"] == md["Arn"]


# ---- encrypt, decrypt, re-encrypt, data keys ----


def test_encrypt_decrypt_with_context(kms):
    key = kms.create_key()["KeyMetadata"]
    ctx = {"tenant": "acme", "purpose": "test"}
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"card 4111", EncryptionContext=ctx)
    assert out["KeyId"] == key["Arn"] and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    # Decrypt needs no KeyId for symmetric keys; the context's order does not matter.
    back = kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(list(ctx.items()))))
    assert back["Plaintext"] == b"card 4111" and back["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, KeyId=key["Arn"])["Plaintext"] == b"card 4111"
    # A missing pair, an extra pair, a changed value or case: InvalidCiphertextException.
    for bad in ({}, {"tenant": "acme"}, {**ctx, "x": "y"}, {**ctx, "tenant": "ACME"}):
        raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=bad)
    # One flipped bit anywhere, or a truncation.
    for i in (0, 5, 25, len(blob) - 1):
        flipped = bytearray(blob)
        flipped[i] ^= 1
        raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(flipped), EncryptionContext=ctx)
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob[:-1], EncryptionContext=ctx)
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"x", EncryptionContext=ctx)
    # Named another key: IncorrectKeyException.
    other = symmetric(kms)
    raises("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx, KeyId=other)


def test_size_limits(kms):
    key = symmetric(kms)
    kms.encrypt(KeyId=key, Plaintext=b"x" * 4096)
    raises("ValidationException", kms.encrypt, KeyId=key, Plaintext=b"x" * 4097)


def test_wrong_key_usage(kms):
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    sym = symmetric(kms)
    raises("InvalidKeyUsageException", kms.encrypt, KeyId=signer, Plaintext=b"x")
    raises("InvalidKeyUsageException", kms.generate_data_key, KeyId=mac, KeySpec="AES_256")
    raises("InvalidKeyUsageException", kms.sign, KeyId=sym, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    raises("InvalidKeyUsageException", kms.sign, KeyId=signer, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    raises("InvalidKeyUsageException", kms.generate_mac, KeyId=mac, Message=b"m", MacAlgorithm="HMAC_SHA_512")


def test_data_keys_work_locally_and_unwrap(kms):
    key = symmetric(kms)
    ctx = {"file": "report.pdf"}
    dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=ctx)
    assert len(dk["Plaintext"]) == 32
    nonce = os.urandom(12)
    sealed = AESGCM(dk["Plaintext"]).encrypt(nonce, b"a large file", None)
    # Later: unwrap the data key through KMS and open the file locally.
    unwrapped = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"]
    assert AESGCM(unwrapped).decrypt(nonce, sealed, None) == b"a large file"

    assert len(kms.generate_data_key(KeyId=key, NumberOfBytes=17)["Plaintext"]) == 17
    assert len(kms.generate_data_key(KeyId=key, KeySpec="AES_128")["Plaintext"]) == 16
    wo = kms.generate_data_key_without_plaintext(KeyId=key, KeySpec="AES_256")
    assert "Plaintext" not in wo
    assert len(kms.decrypt(CiphertextBlob=wo["CiphertextBlob"])["Plaintext"]) == 32
    raises("ValidationException", kms.generate_data_key, KeyId=key)
    raises("ValidationException", kms.generate_data_key, KeyId=key, KeySpec="AES_256", NumberOfBytes=32)


def test_re_encrypt(kms):
    a, b = symmetric(kms), kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=a, Plaintext=b"moving", EncryptionContext={"k": "1"})["CiphertextBlob"]
    out = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"k": "1"},
        DestinationKeyId=b["KeyId"],
        DestinationEncryptionContext={"k": "2"},
    )
    assert out["KeyId"] == b["Arn"] and out["SourceKeyId"].endswith(a)
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"k": "2"})["Plaintext"] == b"moving"
    raises(
        "IncorrectKeyException",
        kms.re_encrypt,
        CiphertextBlob=blob,
        SourceEncryptionContext={"k": "1"},
        SourceKeyId=b["KeyId"],
        DestinationKeyId=b["KeyId"],
    )
    raises("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=b["KeyId"])


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"])
def test_data_key_pairs(kms, spec):
    key = symmetric(kms)
    ctx = {"owner": "signing-service"}
    out = kms.generate_data_key_pair(KeyId=key, KeyPairSpec=spec, EncryptionContext=ctx)
    assert out["KeyPairSpec"] == spec and out["KeyId"].endswith(key)
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
    public = serialization.load_der_public_key(out["PublicKey"])
    assert private.public_key().public_numbers() == public.public_numbers()
    # The wrapped private key unwraps, under its context, to the same PKCS#8 bytes.
    unwrapped = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
    assert unwrapped["Plaintext"] == out["PrivateKeyPlaintext"]
    raises("InvalidCiphertextException", kms.decrypt, CiphertextBlob=out["PrivateKeyCiphertextBlob"])
    wo = kms.generate_data_key_pair_without_plaintext(KeyId=key, KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in wo
    assert serialization.load_der_private_key(
        kms.decrypt(CiphertextBlob=wo["PrivateKeyCiphertextBlob"])["Plaintext"], password=None
    )


def test_data_key_pair_refusals(kms):
    key = symmetric(kms)
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    raises("InvalidKeyUsageException", kms.generate_data_key_pair, KeyId=signer, KeyPairSpec="RSA_2048")
    raises("UnsupportedOperationException", kms.generate_data_key_pair, KeyId=key, KeyPairSpec="SM2")


def test_rsa_encrypt_decrypt(kms):
    md = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    assert md["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_256"]
    out = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"small secret", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["EncryptionAlgorithm"] == "RSAES_OAEP_SHA_256" and len(out["CiphertextBlob"]) == 256
    back = kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=out["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert back["Plaintext"] == b"small secret"
    # A client encrypting with the public key alone gets the same result.
    pub = public_key(kms, md["KeyId"])
    local = pub.encrypt(
        b"from outside",
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    assert kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=local, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"from outside"
    # OAEP-SHA-256 on RSA-2048 holds at most 190 bytes.
    kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x" * 190, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    raises("ValidationException", kms.encrypt, KeyId=md["KeyId"], Plaintext=b"x" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    raises("InvalidKeyUsageException", kms.encrypt, KeyId=md["KeyId"], Plaintext=b"x")
    raises("ValidationException", kms.decrypt, CiphertextBlob=out["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    raises(
        "InvalidCiphertextException",
        kms.decrypt,
        KeyId=md["KeyId"],
        CiphertextBlob=bytes(256),
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )


def test_generate_random(kms):
    r = kms.generate_random(NumberOfBytes=1024)["Plaintext"]
    assert len(r) == 1024 and r != kms.generate_random(NumberOfBytes=1024)["Plaintext"]


# ---- signatures and MACs, checked independently ----


def public_key(kms, key):
    der = kms.get_public_key(KeyId=key)["PublicKey"]
    return serialization.load_der_public_key(der)


HASHES = {"SHA_256": hashes.SHA256(), "SHA_384": hashes.SHA384(), "SHA_512": hashes.SHA512()}


def independent_verify(pub, alg, message, signature):
    """Verifies with pyca/cryptography; raises InvalidSignature if it does not check out."""
    if alg in ("ED25519_SHA_512", "ML_DSA_SHAKE_256"):
        pub.verify(signature, message)
        return
    h = HASHES[alg[-7:]]
    if alg.startswith("ECDSA"):
        pub.verify(signature, message, ec.ECDSA(h))
    elif alg.startswith("RSASSA_PSS"):
        pub.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    else:
        pub.verify(signature, message, padding.PKCS1v15(), h)


@pytest.mark.parametrize(
    "spec",
    ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"],
)
def test_sign_verify_every_algorithm(kms, spec):
    md = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    pub = public_key(kms, md["KeyId"])
    pk = kms.get_public_key(KeyId=md["KeyId"])
    assert pk["KeySpec"] == spec and pk["SigningAlgorithms"] == md["SigningAlgorithms"]
    message = b"the message to sign"
    for alg in md["SigningAlgorithms"]:
        s = kms.sign(KeyId=md["KeyId"], Message=message, SigningAlgorithm=alg)
        assert s["SigningAlgorithm"] == alg and s["KeyId"] == md["Arn"]
        independent_verify(pub, alg, message, s["Signature"])
        ok = kms.verify(KeyId=md["KeyId"], Message=message, Signature=s["Signature"], SigningAlgorithm=alg)
        assert ok["SignatureValid"] is True
        raises(
            "KMSInvalidSignatureException",
            kms.verify,
            KeyId=md["KeyId"],
            Message=b"another message",
            Signature=s["Signature"],
            SigningAlgorithm=alg,
        )
        if alg in ("ED25519_SHA_512", "ML_DSA_SHAKE_256"):
            # Pure schemes: messages only.
            raises("ValidationException", kms.sign, KeyId=md["KeyId"], Message=b"x" * 32, MessageType="DIGEST", SigningAlgorithm=alg)
            continue
        # MessageType DIGEST: the caller hashes; the signature is the same kind.
        h = hashlib.new(alg[-7:].replace("SHA_", "sha"), message).digest()
        d = kms.sign(KeyId=md["KeyId"], Message=h, MessageType="DIGEST", SigningAlgorithm=alg)
        independent_verify(pub, alg, message, d["Signature"])
        raises(
            "ValidationException",
            kms.sign,
            KeyId=md["KeyId"],
            Message=h[:-1],
            MessageType="DIGEST",
            SigningAlgorithm=alg,
        )


@pytest.mark.parametrize("bits", [224, 256, 384, 512])
def test_mac(kms, bits):
    alg = f"HMAC_SHA_{bits}"
    md = kms.create_key(KeySpec=f"HMAC_{bits}", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    key = md["KeyId"]
    assert md["MacAlgorithms"] == [alg]
    out = kms.generate_mac(KeyId=key, Message=b"payload", MacAlgorithm=alg)
    assert out["MacAlgorithm"] == alg and len(out["Mac"]) == bits // 8
    assert kms.verify_mac(KeyId=key, Message=b"payload", Mac=out["Mac"], MacAlgorithm=alg)["MacValid"]
    raises("KMSInvalidMacException", kms.verify_mac, KeyId=key, Message=b"other", Mac=out["Mac"], MacAlgorithm=alg)
    bad = bytes([out["Mac"][0] ^ 1]) + out["Mac"][1:]
    raises("KMSInvalidMacException", kms.verify_mac, KeyId=key, Message=b"payload", Mac=bad, MacAlgorithm=alg)
    # Deterministic: the same message gives the same MAC.
    assert kms.generate_mac(KeyId=key, Message=b"payload", MacAlgorithm=alg)["Mac"] == out["Mac"]
    # A key of one size takes no other MAC algorithm.
    other = "HMAC_SHA_256" if bits != 256 else "HMAC_SHA_224"
    raises("InvalidKeyUsageException", kms.generate_mac, KeyId=key, Message=b"payload", MacAlgorithm=other)


@pytest.mark.parametrize("bits", [224, 256, 384, 512])
def test_imported_mac_key_matches_python_hmac(kms, bits):
    """Known key material imported into an HMAC key gives the MAC Python's hmac computes."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    key = kms.create_key(KeySpec=f"HMAC_{bits}", KeyUsage="GENERATE_VERIFY_MAC", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    wrapping_key = serialization.load_der_public_key(p["PublicKey"])
    # Material must be as long as the hash output.
    raises(
        "IncorrectKeyMaterialException",
        kms.import_key_material,
        KeyId=key,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrapping_key.encrypt(os.urandom(bits // 8 + 1), oaep),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    material = os.urandom(bits // 8)
    kms.import_key_material(
        KeyId=key,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrapping_key.encrypt(material, oaep),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    message = b"interoperable MAC"
    want = hmac.new(material, message, getattr(hashlib, f"sha{bits}")).digest()
    assert kms.generate_mac(KeyId=key, Message=message, MacAlgorithm=f"HMAC_SHA_{bits}")["Mac"] == want


# ---- aliases ----


def test_aliases(kms):
    a, b = kms.create_key()["KeyMetadata"], kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/orders", TargetKeyId=a["KeyId"])
    raises("AlreadyExistsException", kms.create_alias, AliasName="alias/orders", TargetKeyId=b["KeyId"])
    raises("ValidationException", kms.create_alias, AliasName="alias/aws/s3", TargetKeyId=a["KeyId"])
    raises("ValidationException", kms.create_alias, AliasName="orders", TargetKeyId=a["KeyId"])
    # An alias name, or its ARN, is a key id everywhere.
    arn = f"arn:aws:kms:{REGION}:000000000000:alias/orders"
    for ref in ("alias/orders", arn):
        assert kms.encrypt(KeyId=ref, Plaintext=b"x")["KeyId"] == a["Arn"]
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == a["KeyId"]
    listed = [x for x in kms.list_aliases()["Aliases"] if x["AliasName"] == "alias/orders"]
    assert listed[0]["TargetKeyId"] == a["KeyId"] and listed[0]["AliasArn"] == arn
    assert [x["AliasName"] for x in kms.list_aliases(KeyId=a["KeyId"])["Aliases"]] == ["alias/orders"]

    kms.update_alias(AliasName="alias/orders", TargetKeyId=b["KeyId"])
    assert kms.encrypt(KeyId="alias/orders", Plaintext=b"x")["KeyId"] == b["Arn"]
    kms.delete_alias(AliasName="alias/orders")
    raises("NotFoundException", kms.encrypt, KeyId="alias/orders", Plaintext=b"x")
    raises("NotFoundException", kms.delete_alias, AliasName="alias/orders")
    raises("NotFoundException", kms.describe_key, KeyId="00000000-0000-4000-8000-000000000000")
    raises("NotFoundException", kms.describe_key, KeyId="arn:aws:kms:eu-west-1:000000000000:key/x")


# ---- rotation ----


def test_rotation(server, kms):
    key = symmetric(kms)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is False
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 90
    assert isinstance(status["NextRotationDate"], datetime.datetime)
    old = kms.encrypt(KeyId=key, Plaintext=b"old")["CiphertextBlob"]
    assert kms.list_key_rotations(KeyId=key)["Rotations"] == []
    assert kms.rotate_key_on_demand(KeyId=key)["KeyId"] == key
    rotations = kms.list_key_rotations(KeyId=key)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    assert rotations[0]["KeyId"].endswith(key) and isinstance(rotations[0]["RotationDate"], datetime.datetime)
    new = kms.encrypt(KeyId=key, Plaintext=b"new")["CiphertextBlob"]
    assert old[20:24] != new[20:24], "the new ciphertext names the new version"
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"old"
    kms.disable_key_rotation(KeyId=key)
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False
    # botocore checks the range itself; without its check the server does.
    unchecked = server.client(parameter_validation=False)
    for days in (89, 2561):
        raises("ValidationException", unchecked.enable_key_rotation, KeyId=key, RotationPeriodInDays=days)
    for n in (0, 1025):
        raises("ValidationException", unchecked.generate_random, NumberOfBytes=n)
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    raises("UnsupportedOperationException", kms.enable_key_rotation, KeyId=signer)
    raises("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=signer)


# ---- authentication ----


def test_authentication_failures(server, kms):
    raises("InvalidSignatureException", server.client(secret="wrong-secret").list_keys)
    raises("UnrecognizedClientException", server.client(access_key_id="AKIDUNKNOWN000000000").list_keys)
    raises("InvalidSignatureException", server.client(region="eu-west-1").list_keys)
    unsigned = server.client(signature_version=botocore.UNSIGNED)
    raises("MissingAuthenticationTokenException", unsigned.list_keys)


def signed_request(server, target, body, when=None, secret=SECRET, content_type="application/x-amz-json-1.1"):
    """A hand-made SigV4-signed request (for bodies and times an SDK would not send)."""
    req = botocore.awsrequest.AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": content_type},
    )
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY_ID, secret), "kms", REGION)
    real_now = botocore.auth.get_current_datetime
    if when is not None:
        # botocore takes the signing time from this function; sign as if it were `when`.
        botocore.auth.get_current_datetime = lambda: when.replace(tzinfo=None)
    try:
        signer.add_auth(req)
    finally:
        botocore.auth.get_current_datetime = real_now
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_signing_time_window(server):
    now = datetime.datetime.now(datetime.timezone.utc)
    status, body = signed_request(server, "TrentService.ListKeys", b"{}", when=now)
    assert status == 200, body
    for skew in (-16, 16):
        status, body = signed_request(server, "TrentService.ListKeys", b"{}", when=now + datetime.timedelta(minutes=skew))
        assert (status, body["__type"]) == (400, "InvalidSignatureException"), body
        assert "expired" in body["message"]


def test_malformed_requests_are_refused_and_audited(server):
    cases = [
        ("TrentService.ListKeys", b"{not json", "SerializationException"),
        ("TrentService.ListKeys", b'{"Limit": 1} trailing', "SerializationException"),
        ("TrentService.ListKeys", b'{"Limit": "ten"}', "ValidationException"),
        ("TrentService.ListKeys", b'{"Limit": 1, "Surprise": true}', "ValidationException"),
        ("TrentService.Encrypt", b'{"KeyId": "alias/x", "Plaintext": "not base64!"}', "ValidationException"),
        ("TrentService.Encrypt", b'{"Plaintext": "aGk="}', "ValidationException"),
        (
            "TrentService.Encrypt",
            b'{"KeyId": "alias/x", "Plaintext": "aGk=", "EncryptionContext": {"a": "1", "a": "2"}}',
            "ValidationException",
        ),
        ("TrentService.NoSuchThing", b"{}", "UnknownOperationException"),
        ("DynamoDB_20120810.ListTables", b"{}", "UnknownOperationException"),
        ("TrentService.ReplicateKey", b'{"KeyId": "x"}', "UnsupportedOperationException"),
    ]
    for target, body, expected in cases:
        status, answer = signed_request(server, target, body)
        assert (status, answer["__type"]) == (400, expected), (target, body, answer)
        assert "not base64!" not in answer["message"]
    status, answer = signed_request(server, "TrentService.ListKeys", b"{}", content_type="application/json")
    assert answer["__type"] == "UnknownOperationException"
    # A malformed request with a bad signature learns only that its signature is bad.
    status, answer = signed_request(server, "TrentService.ListKeys", b"{not json", secret="nope")
    assert answer["__type"] == "InvalidSignatureException"
    # Oversized bodies are refused before they are read.
    status, answer = signed_request(server, "TrentService.Encrypt", b"{" + b" " * 70000 + b"}")
    assert answer["__type"] == "ValidationException"
    events = [e for e in server.audit(operation="rejected-request") if e["protocol"] == "aws"]
    codes = {e["error_code"] for e in events}
    assert {"malformed_request", "invalid_argument", "unknown_operation", "unsupported_operation"} <= codes, codes


# ---- one key store: principals, policy, and the native API ----


def test_principals_policy_and_native_interop(server, kms):
    # A key created through the native API, used here through an alias...
    assert server.native("POST", "/v1/keyrings", {"name": "payments"})[0] == 201
    status, created = server.native("POST", "/v1/keyrings/payments/keys", {"name": "cards"})
    assert status == 201, created
    assert server.native("POST", "/v1/aliases", {"name": "cards", "key": "payments/cards"})[0] == 201
    blob = kms.encrypt(KeyId="alias/cards", Plaintext=b"from aws", EncryptionContext={"t": "1"})["CiphertextBlob"]
    status, out = server.native(
        "POST",
        "/v1/crypto/decrypt",
        {"ciphertext": base64.b64encode(blob).decode(), "context": {"t": "1"}},
    )
    assert status == 200 and base64.b64decode(out["plaintext"]) == b"from aws"
    # ...and a key created here is a Strongroom key in the `aws` ring.
    key = symmetric(kms)
    status, k = server.native("GET", f"/v1/keyrings/aws/keys/{key}")
    assert status == 200 and k["id"] == key

    # A principal with the key-user role signs with its own access key pair.
    status, _ = server.native("POST", "/v1/principals", {"name": "app", "roles": ["key-user"]})
    assert status == 201
    status, pair = server.native("POST", "/v1/principals/app/access-keys", {})
    assert status == 201
    app = server.client(access_key_id=pair["access_key_id"], secret=pair["secret_access_key"])
    blob = app.encrypt(KeyId=key, Plaintext=b"user data")["CiphertextBlob"]
    assert app.decrypt(CiphertextBlob=blob)["Plaintext"] == b"user data"
    # Key users use keys; they do not make or change them.
    before = len(kms.list_keys(Limit=1000)["Keys"])
    raises("AccessDeniedException", app.create_key)
    raises("AccessDeniedException", app.disable_key, KeyId=key)
    assert len(kms.list_keys(Limit=1000)["Keys"]) == before
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["Enabled"]
    # Refused the same way whether or not the key exists.
    raises("AccessDeniedException", app.create_alias, AliasName="alias/mine", TargetKeyId=key)
    missing = "00000000-0000-4000-8000-00000000abcd"
    raises("AccessDeniedException", app.create_alias, AliasName="alias/mine", TargetKeyId=missing)
    # Revoked: the pair stops working at once.
    assert server.native("DELETE", f"/v1/access-keys/{pair['access_key_id']}")[0] == 200
    raises("UnrecognizedClientException", app.encrypt, KeyId=key, Plaintext=b"x")

    events = [e for e in server.audit(principal="app") if e["protocol"] == "aws"]
    assert events and all(e["auth_method"] == "sigv4" for e in events)
    assert {e["outcome"] for e in events} == {"ok", "error"}
    # No secret, plaintext or data key reaches the audit log.
    log = json.dumps(server.audit())
    for secret in (SECRET, pair["secret_access_key"], "user data", "from aws"):
        assert secret not in log


# ---- grants ----


def test_grants(server, kms):
    key = symmetric(kms)
    for name in ("grantee-app", "grant-ops"):
        assert server.native("POST", "/v1/principals", {"name": name})[0] == 201
    status, pair = server.native("POST", "/v1/principals/grantee-app/access-keys", {})
    assert status == 201
    app = server.client(access_key_id=pair["access_key_id"], secret=pair["secret_access_key"])
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "acme"})

    g = kms.create_grant(
        KeyId=key,
        GranteePrincipal="arn:aws:iam::000000000000:user/grantee-app",
        RetiringPrincipal="grant-ops",
        Operations=["Encrypt", "Decrypt"],
        Constraints={"EncryptionContextSubset": {"tenant": "acme"}},
        Name="acme-app",
    )
    assert g["GrantId"].startswith("srg_") and g["GrantToken"]
    blob = app.encrypt(KeyId=key, Plaintext=b"granted", EncryptionContext={"tenant": "acme"}, GrantTokens=[g["GrantToken"]])[
        "CiphertextBlob"
    ]
    assert app.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "acme"})["Plaintext"] == b"granted"
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "other"})
    raises("AccessDeniedException", app.generate_data_key, KeyId=key, KeySpec="AES_256", EncryptionContext={"tenant": "acme"})

    listed = kms.list_grants(KeyId=key)["Grants"]
    assert len(listed) == 1
    entry = listed[0]
    assert entry["GrantId"] == g["GrantId"] and entry["Name"] == "acme-app"
    assert entry["GranteePrincipal"] == "arn:aws:iam::000000000000:user/grantee-app"
    assert entry["RetiringPrincipal"] == "arn:aws:iam::000000000000:user/grant-ops"
    assert sorted(entry["Operations"]) == ["Decrypt", "Encrypt"]
    assert entry["Constraints"] == {"EncryptionContextSubset": {"tenant": "acme"}}
    assert [x["GrantId"] for x in kms.list_retirable_grants(RetiringPrincipal="grant-ops")["Grants"]] == [g["GrantId"]]

    # Refusals: bad operations, constraints on an operation without a context, unknown
    # grantee, a grant id that names nothing. None creates a grant.
    raises("ValidationException", kms.create_grant, KeyId=key, GranteePrincipal="grantee-app", Operations=["Dance"])
    raises(
        "ValidationException",
        kms.create_grant,
        KeyId=key,
        GranteePrincipal="grantee-app",
        Operations=["Sign"],
        Constraints={"EncryptionContextEquals": {"a": "1"}},
    )
    raises("NotFoundException", kms.create_grant, KeyId=key, GranteePrincipal="nobody-here", Operations=["Encrypt"])
    raises("InvalidGrantIdException", kms.revoke_grant, KeyId=key, GrantId="srg_000000000000000000000000")
    assert len(kms.list_grants(KeyId=key)["Grants"]) == 1
    # The grantee cannot revoke it (that needs revoke-grant on the key); root revokes.
    raises("AccessDeniedException", app.revoke_grant, KeyId=key, GrantId=g["GrantId"])
    kms.revoke_grant(KeyId=key, GrantId=g["GrantId"])
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "acme"})
    assert kms.list_grants(KeyId=key)["Grants"] == []

    # Retired with its token by its retiring principal.
    g2 = kms.create_grant(KeyId=key, GranteePrincipal="grantee-app", RetiringPrincipal="grant-ops", Operations=["Encrypt"])
    status, ops_pair = server.native("POST", "/v1/principals/grant-ops/access-keys", {})
    ops = server.client(access_key_id=ops_pair["access_key_id"], secret=ops_pair["secret_access_key"])
    app.encrypt(KeyId=key, Plaintext=b"x")
    ops.retire_grant(GrantToken=g2["GrantToken"])
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x")
    raises("InvalidGrantIdException", ops.retire_grant, GrantToken=g2["GrantToken"])
    events = [e for e in server.audit(operation="encrypt") if e.get("policy", "").startswith("grant:")]
    assert events, "grant decisions are named in the audit log"


# ---- key policies ----


def test_key_policies(server, kms):
    assert server.native("POST", "/v1/principals", {"name": "policy-app"})[0] == 201
    status, pair = server.native("POST", "/v1/principals/policy-app/access-keys", {})
    app = server.client(access_key_id=pair["access_key_id"], secret=pair["secret_access_key"])
    key = symmetric(kms)
    default = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert default["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::000000000000:root"}
    assert kms.list_key_policies(KeyId=key)["PolicyNames"] == ["default"]
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "acme"})

    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AppEncryptsForAcme",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::000000000000:user/policy-app"},
                    "Action": ["kms:Encrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringLike": {"kms:EncryptionContext:tenant": "ac*"}},
                },
                {"Sid": "NoDeletion", "Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"},
            ],
        }
    )
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy)
    assert kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"] == policy
    # Enforced: the allow, within its condition; the deny, even for root's policies.
    app.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "acme"})
    app.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"tenant": "acorn"})
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "globex"})
    raises("AccessDeniedException", app.decrypt, CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"])
    # Root is allowed everything by construction (builtin), so the deny shows on a principal:
    status, admin_pair = None, None
    assert server.native("POST", "/v1/principals", {"name": "policy-admin", "roles": ["key-admin"]})[0] == 201
    status, admin_pair = server.native("POST", "/v1/principals/policy-admin/access-keys", {})
    admin = server.client(access_key_id=admin_pair["access_key_id"], secret=admin_pair["secret_access_key"])
    admin.disable_key(KeyId=key)
    admin.enable_key(KeyId=key)
    raises("AccessDeniedException", admin.schedule_key_deletion, KeyId=key)

    # Replaced: the old statements stop applying.
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps({"Statement": []}))
    raises("AccessDeniedException", app.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"tenant": "acme"})

    # Outside the subset: refused naming the element; the old policy stays.
    for bad, element in (
        ({"Statement": [{"Effect": "Allow", "NotPrincipal": "*", "Action": "kms:*", "Resource": "*"}]}, "NotPrincipal"),
        ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}, "IpAddress"),
        ({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]}, "111122223333"),
    ):
        r = raises("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key, PolicyName="default", Policy=json.dumps(bad))
        assert element in r["Error"]["Message"], r
    assert json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]) == {"Statement": []}
    raises("ValidationException", kms.get_key_policy, KeyId=key, PolicyName="other")

    # CreateKey with a policy: applied at once; a malformed one creates no key.
    before = len(kms.list_keys(Limit=1000)["Keys"])
    raises("MalformedPolicyDocumentException", kms.create_key, Policy=json.dumps({"Statement": [{"Effect": "Allow", "NotAction": "x"}]}))
    assert len(kms.list_keys(Limit=1000)["Keys"]) == before
    allow_app = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/policy-app"}, "Action": "kms:Encrypt", "Resource": "*"}
            ]
        }
    )
    k2 = kms.create_key(Policy=allow_app)["KeyMetadata"]["KeyId"]
    app.encrypt(KeyId=k2, Plaintext=b"x")
    assert kms.get_key_policy(KeyId=k2, PolicyName="default")["Policy"] == allow_app


# ---- importing key material (BYOK) ----


def test_import_key_material(kms):
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    md = kms.create_key(Origin="EXTERNAL", Description="byok")["KeyMetadata"]
    key = md["KeyId"]
    assert (md["Origin"], md["KeyState"], md["Enabled"]) == ("EXTERNAL", "PendingImport", False)
    raises("KMSInvalidStateException", kms.encrypt, KeyId=key, Plaintext=b"x")

    material = os.urandom(32)
    p = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    assert p["KeyId"] == md["Arn"]
    wrapping_key = serialization.load_der_public_key(p["PublicKey"])
    assert wrapping_key.key_size == 2048
    # Wrong length for SYMMETRIC_DEFAULT: IncorrectKeyMaterialException; the token survives.
    raises(
        "IncorrectKeyMaterialException",
        kms.import_key_material,
        KeyId=key,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrapping_key.encrypt(os.urandom(16), oaep),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    # ExpirationModel and ValidTo as AWS checks them; none of these spends the token.
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    wrapped = wrapping_key.encrypt(material, oaep)
    for args in (
        {},  # KEY_MATERIAL_EXPIRES is the default, and needs ValidTo
        {"ExpirationModel": "KEY_MATERIAL_EXPIRES"},
        {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": now + day},
        {"ValidTo": now - day},
        {"ValidTo": now + 366 * day},
    ):
        raises("ValidationException", kms.import_key_material, KeyId=key, ImportToken=p["ImportToken"], EncryptedKeyMaterial=wrapped, **args)
    kms.import_key_material(
        KeyId=key,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrapping_key.encrypt(material, oaep),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert (md["KeyState"], md["ExpirationModel"]) == ("Enabled", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(KeyId=key, Plaintext=b"mine", EncryptionContext={"a": "b"})["CiphertextBlob"]
    # Material in place: importing again needs it deleted first.
    raises(
        "KMSInvalidStateException",
        kms.import_key_material,
        KeyId=key,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrapping_key.encrypt(material, oaep),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    raises("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=key)

    kms.delete_imported_key_material(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    raises("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob, EncryptionContext={"a": "b"})
    # A spent token, and a forged one, are refused.
    for token in (p["ImportToken"], b"srit_forged"):
        raises(
            "InvalidImportTokenException",
            kms.import_key_material,
            KeyId=key,
            ImportToken=token,
            EncryptedKeyMaterial=wrapping_key.encrypt(material, oaep),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )

    # Re-import, wrapped with RSA_AES_KEY_WRAP_SHA_256: only the same material is taken.
    p2 = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec="RSA_3072")
    wk2 = serialization.load_der_public_key(p2["PublicKey"])

    def kwp(m):
        kek = os.urandom(32)
        return wk2.encrypt(kek, oaep) + aes_key_wrap_with_padding(kek, m)

    raises(
        "IncorrectKeyMaterialException",
        kms.import_key_material,
        KeyId=key,
        ImportToken=p2["ImportToken"],
        EncryptedKeyMaterial=kwp(os.urandom(32)),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    kms.import_key_material(
        KeyId=key, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=kwp(material), ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"
    )
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"mine"

    # Refusals: a generated key takes no import; an unsupported wrapping.
    generated = symmetric(kms)
    raises("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=generated, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    raises("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=key, WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048")


def test_imported_material_expires(kms):
    """Material imported with ValidTo is deleted at that time; the key waits for it again."""
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    s = Server(["--scheduler-interval", "1s"])
    try:
        kms = s.client()
        key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        material = os.urandom(32)

        def import_material(**expiry):
            p = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
            wrapping_key = serialization.load_der_public_key(p["PublicKey"])
            kms.import_key_material(KeyId=key, ImportToken=p["ImportToken"], EncryptedKeyMaterial=wrapping_key.encrypt(material, oaep), **expiry)

        valid_to = int(time.time()) + 3
        import_material(ValidTo=valid_to)  # ExpirationModel defaults to KEY_MATERIAL_EXPIRES
        md = kms.describe_key(KeyId=key)["KeyMetadata"]
        assert (md["KeyState"], md["ExpirationModel"], int(md["ValidTo"].timestamp())) == ("Enabled", "KEY_MATERIAL_EXPIRES", valid_to)
        blob = kms.encrypt(KeyId=key, Plaintext=b"for a few seconds")["CiphertextBlob"]
        deadline = time.time() + 20
        while kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] != "PendingImport":
            assert time.time() < deadline, "the material did not expire"
            time.sleep(0.2)
        assert time.time() >= valid_to
        raises("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
        events = [e for e in s.audit() if e["operation"] == "scheduled-material-expiry"]
        assert [e["outcome"] for e in events] == ["ok"]
        # The same material again, without expiry, opens what it sealed.
        import_material(ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        md = kms.describe_key(KeyId=key)["KeyMetadata"]
        assert (md["ExpirationModel"], "ValidTo" in md) == ("KEY_MATERIAL_DOES_NOT_EXPIRE", False)
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"for a few seconds"
    finally:
        s.stop()


# ---- key agreement ----


@pytest.mark.parametrize("spec,curve", [("ECC_NIST_P256", ec.SECP256R1()), ("ECC_NIST_P384", ec.SECP384R1()), ("ECC_NIST_P521", ec.SECP521R1())])
def test_derive_shared_secret(kms, spec, curve):
    md = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    assert md["KeyUsage"] == "KEY_AGREEMENT" and md["KeyAgreementAlgorithms"] == ["ECDH"]
    ours = public_key(kms, md["KeyId"])
    peer = ec.generate_private_key(curve)
    peer_der = peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
    assert out["SharedSecret"] == peer.exchange(ec.ECDH(), ours)
    assert out["KeyAgreementAlgorithm"] == "ECDH" and out["KeyId"] == md["Arn"]
    # Another curve's key, an uncompressed point without its DER wrapping: refused.
    other = ec.generate_private_key(ec.SECP256K1()).public_key()
    bad = other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    raises("ValidationException", kms.derive_shared_secret, KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=bad)
    raw = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    raises("ValidationException", kms.derive_shared_secret, KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=raw)
    raises("InvalidKeyUsageException", kms.sign, KeyId=md["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    sym_key = symmetric(kms)
    raises("InvalidKeyUsageException", kms.derive_shared_secret, KeyId=sym_key, KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
