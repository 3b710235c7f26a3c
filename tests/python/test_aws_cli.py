"""The `aws` command line (awscli from PyPI) against the real binary: what an operator types
a minute after `strongroom serve --dev` with the dev access key pair set."""

import base64
import json
import os
import subprocess
import sys

import pytest

from conftest import ACCESS_KEY_ID, REGION, SECRET


def aws(server, tmp_path, *args, check=True):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_MAX_ATTEMPTS": "1",
    }
    exe = os.path.join(os.path.dirname(sys.executable), "aws")
    p = subprocess.run(
        [exe, "kms", *args, "--endpoint-url", server.url, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else None
    return p


def test_cli_round_trip(server, tmp_path):
    key = aws(server, tmp_path, "create-key", "--description", "from the cli")["KeyMetadata"]
    aws(server, tmp_path, "create-alias", "--alias-name", "alias/cli", "--target-key-id", key["KeyId"])
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"hello from the aws cli\n")
    out = aws(
        server,
        tmp_path,
        "encrypt",
        "--key-id",
        "alias/cli",
        "--plaintext",
        f"fileb://{secret}",
        "--encryption-context",
        "tenant=acme",
    )
    assert out["KeyId"] == key["Arn"]
    blob = tmp_path / "secret.enc"
    blob.write_bytes(base64.b64decode(out["CiphertextBlob"]))
    back = aws(
        server,
        tmp_path,
        "decrypt",
        "--ciphertext-blob",
        f"fileb://{blob}",
        "--encryption-context",
        "tenant=acme",
    )
    assert base64.b64decode(back["Plaintext"]) == b"hello from the aws cli\n"
    aliases = aws(server, tmp_path, "list-aliases")["Aliases"]
    assert any(a["AliasName"] == "alias/cli" and a["TargetKeyId"] == key["KeyId"] for a in aliases)
    assert aws(server, tmp_path, "describe-key", "--key-id", "alias/cli")["KeyMetadata"]["Description"] == "from the cli"


def test_cli_reports_aws_errors(server, tmp_path):
    key = aws(server, tmp_path, "create-key")["KeyMetadata"]["KeyId"]
    aws(server, tmp_path, "disable-key", "--key-id", key)
    p = aws(server, tmp_path, "encrypt", "--key-id", key, "--plaintext", "fileb:///dev/null", check=False)
    assert p.returncode != 0
    p = aws(server, tmp_path, "generate-data-key", "--key-id", key, "--key-spec", "AES_256", check=False)
    assert p.returncode != 0 and "DisabledException" in p.stderr, p.stderr
    p = aws(server, tmp_path, "describe-key", "--key-id", "alias/nothing-here", check=False)
    assert p.returncode != 0 and "NotFoundException" in p.stderr, p.stderr


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_cli_sign_verify(server, tmp_path, spec):
    key = aws(server, tmp_path, "create-key", "--key-spec", spec, "--key-usage", "SIGN_VERIFY")["KeyMetadata"]
    alg = key["SigningAlgorithms"][0]
    msg = tmp_path / "msg"
    msg.write_bytes(b"release 1.2.3")
    sig = aws(server, tmp_path, "sign", "--key-id", key["KeyId"], "--message", f"fileb://{msg}", "--signing-algorithm", alg)
    sig_file = tmp_path / "sig"
    sig_file.write_bytes(base64.b64decode(sig["Signature"]))
    ok = aws(
        server,
        tmp_path,
        "verify",
        "--key-id",
        key["KeyId"],
        "--message",
        f"fileb://{msg}",
        "--signature",
        f"fileb://{sig_file}",
        "--signing-algorithm",
        alg,
    )
    assert ok["SignatureValid"] is True
