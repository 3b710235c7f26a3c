"""The same AWS KMS scenarios against Strongroom and against moto's server (a popular local
KMS stand-in): Strongroom must answer what AWS documents; where moto answers otherwise, the
difference must be the one written in docs/aws-compatibility.md ("Compared with moto"), so
the document stays true when either side changes."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore
import botocore.config
import pytest

from conftest import REGION

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "aws-compatibility.md")


def code_of(fn):
    """`ok` or the AWS error code of calling fn."""
    try:
        fn()
        return "ok"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def sym(kms):
    return kms.create_key()["KeyMetadata"]["KeyId"]


def s_default_key_spec(kms):
    md = kms.create_key()["KeyMetadata"]
    return "/".join(str(md.get(f, "absent")) for f in ("KeySpec", "KeyUsage", "KeyState"))


def s_round_trip(kms):
    k = sym(kms)
    blob = kms.encrypt(KeyId=k, Plaintext=b"x", EncryptionContext={"a": "1"})["CiphertextBlob"]
    return code_of(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1"}))


def s_wrong_context(kms):
    k = sym(kms)
    blob = kms.encrypt(KeyId=k, Plaintext=b"x", EncryptionContext={"a": "1"})["CiphertextBlob"]
    return code_of(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "2"}))


def s_other_key(kms):
    a, b = sym(kms), sym(kms)
    blob = kms.encrypt(KeyId=a, Plaintext=b"x")["CiphertextBlob"]
    return code_of(lambda: kms.decrypt(CiphertextBlob=blob, KeyId=b))


def s_disabled(kms):
    k = sym(kms)
    kms.disable_key(KeyId=k)
    return code_of(lambda: kms.encrypt(KeyId=k, Plaintext=b"x"))


def s_oversize(kms):
    k = sym(kms)
    return code_of(lambda: kms.encrypt(KeyId=k, Plaintext=b"x" * 4097))


def s_sign_with_symmetric(kms):
    k = sym(kms)
    return code_of(lambda: kms.sign(KeyId=k, Message=b"m", SigningAlgorithm="ECDSA_SHA_256"))


def s_reserved_alias(kms):
    k = sym(kms)
    return code_of(lambda: kms.create_alias(AliasName="alias/aws/thing", TargetKeyId=k))


def s_alias_twice(kms):
    k = sym(kms)
    name = f"alias/twice-{k[:8]}"
    kms.create_alias(AliasName=name, TargetKeyId=k)
    return code_of(lambda: kms.create_alias(AliasName=name, TargetKeyId=k))


def s_pending_deletion(kms):
    k = sym(kms)
    kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7)
    return code_of(lambda: kms.encrypt(KeyId=k, Plaintext=b"x"))


def s_tampered_signature(kms):
    k = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    sig = kms.sign(KeyId=k, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    return code_of(lambda: kms.verify(KeyId=k, Message=b"other", Signature=sig, SigningAlgorithm="ECDSA_SHA_256"))


def s_data_key_without_size(kms):
    k = sym(kms)
    return code_of(lambda: kms.generate_data_key(KeyId=k))


def s_rotation_default(kms):
    return str(kms.get_key_rotation_status(KeyId=sym(kms))["KeyRotationEnabled"])


def s_missing_key(kms):
    return code_of(lambda: kms.describe_key(KeyId="00000000-0000-4000-8000-0000000000ff"))


def s_rotate_asymmetric(kms):
    k = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return code_of(lambda: kms.enable_key_rotation(KeyId=k))


def s_mac_wrong_algorithm(kms):
    k = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    return code_of(lambda: kms.generate_mac(KeyId=k, Message=b"m", MacAlgorithm="HMAC_SHA_512"))


def s_wrong_source_key(kms):
    a, b = sym(kms), sym(kms)
    blob = kms.encrypt(KeyId=a, Plaintext=b"x")["CiphertextBlob"]
    return code_of(lambda: kms.re_encrypt(CiphertextBlob=blob, SourceKeyId=b, DestinationKeyId=b))


def s_cancel_not_pending(kms):
    return code_of(lambda: kms.cancel_key_deletion(KeyId=sym(kms)))


def s_sign_digest_wrong_length(kms):
    k = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return code_of(
        lambda: kms.sign(KeyId=k, Message=b"short", MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    )


# Scenario → what AWS documents.
SCENARIOS = {
    "default-key-spec": (s_default_key_spec, "SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT/Enabled"),
    "round-trip": (s_round_trip, "ok"),
    "wrong-context": (s_wrong_context, "InvalidCiphertextException"),
    "other-key": (s_other_key, "IncorrectKeyException"),
    "disabled-key": (s_disabled, "DisabledException"),
    "oversize-plaintext": (s_oversize, "ValidationException"),
    "sign-with-symmetric-key": (s_sign_with_symmetric, "InvalidKeyUsageException"),
    "reserved-alias": (s_reserved_alias, "ValidationException"),
    "alias-twice": (s_alias_twice, "AlreadyExistsException"),
    "pending-deletion-key": (s_pending_deletion, "KMSInvalidStateException"),
    "tampered-signature": (s_tampered_signature, "KMSInvalidSignatureException"),
    "data-key-without-size": (s_data_key_without_size, "ValidationException"),
    "rotation-off-by-default": (s_rotation_default, "False"),
    "missing-key": (s_missing_key, "NotFoundException"),
    "rotate-asymmetric-key": (s_rotate_asymmetric, "UnsupportedOperationException"),
    "mac-wrong-algorithm": (s_mac_wrong_algorithm, "InvalidKeyUsageException"),
    "wrong-source-key": (s_wrong_source_key, "IncorrectKeyException"),
    "cancel-deletion-not-pending": (s_cancel_not_pending, "KMSInvalidStateException"),
    "digest-of-wrong-length": (s_sign_digest_wrong_length, "ValidationException"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    port = free_port()
    p = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except Exception:
            time.sleep(0.05)
    client = boto3.client(
        "kms",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False),
    )
    yield client
    p.terminate()
    p.wait(timeout=10)


def documented_differences():
    text = open(DOC).read()
    block = text.split("<!-- moto-differences:begin -->")[1].split("<!-- moto-differences:end -->")[0]
    return dict(re.findall(r"^\| `([a-z0-9-]+)` \| `([^`]+)` \|", block, re.M))


def test_strongroom_answers_as_aws_documents_and_moto_differs_only_as_documented(server, moto):
    ours = server.client(parameter_validation=False)
    observed = {}
    for name, (fn, expected) in SCENARIOS.items():
        got = fn(ours)
        assert got == expected, f"{name}: Strongroom answered {got}, AWS documents {expected}"
        try:
            theirs = fn(moto)
        except botocore.exceptions.ClientError as e:
            # An error in the scenario's set-up (not in the step it checks).
            theirs = "setup failed: " + e.response["Error"]["Code"]
        if theirs != expected:
            observed[name] = theirs
    assert observed == documented_differences(), (
        "moto's differences changed; update the table in docs/aws-compatibility.md: " + repr(observed)
    )
