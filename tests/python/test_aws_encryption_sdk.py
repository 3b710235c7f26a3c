"""The AWS Encryption SDK for Python, a real envelope-encryption client, working unchanged
against Strongroom: it asks KMS (through botocore, pointed here by AWS_ENDPOINT_URL_KMS)
for a data key under a key ARN, encrypts locally, and later asks KMS to decrypt the data
key."""

import os

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy

from conftest import ACCESS_KEY_ID, REGION, SECRET


@pytest.fixture
def botocore_session(server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return botocore.session.Session()


def test_envelope_encryption_round_trip(kms, botocore_session):
    arn = kms.create_key(Description="encryption sdk")["KeyMetadata"]["Arn"]
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[arn], botocore_session=botocore_session
    )
    message = os.urandom(100_000)
    ciphertext, header = client.encrypt(
        source=message, key_provider=provider, encryption_context={"purpose": "test"}
    )
    assert message not in ciphertext
    assert header.encryption_context["purpose"] == "test"
    assert [k.key_provider.key_info.decode() for k in header.encrypted_data_keys] == [arn]

    plaintext, dheader = client.decrypt(source=ciphertext, key_provider=provider)
    assert plaintext == message
    assert dheader.encryption_context["purpose"] == "test"

    # The data key is wrapped by Strongroom: with the key disabled, nothing opens.
    kms.disable_key(KeyId=arn)
    with pytest.raises(Exception) as e:
        client.decrypt(source=ciphertext, key_provider=provider)
    assert "DisabledException" in repr(e.value) or "Unable to decrypt" in str(e.value), e.value
    kms.enable_key(KeyId=arn)
    assert client.decrypt(source=ciphertext, key_provider=provider)[0] == message
