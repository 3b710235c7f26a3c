//! The AWS KMS API through the official AWS SDK for Rust (`aws-sdk-kms`): real SDK, real
//! SigV4 signing, real HTTP, against the real binary. The Python suites (tests/python)
//! cover every operation with boto3 and the aws CLI; this checks the Rust SDK's view of
//! the same protocol: request shapes, response parsing and error codes.

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};

use crate::support::{ROOT, TestServer};

const ACCESS_KEY_ID: &str = "AKIDRUSTSDKTEST00001";
const SECRET: &str = "rust-sdk-secret/0123456789abcdefghijklmn";

fn server() -> TestServer {
    TestServer::start(
        &["--dev"],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("STRONGROOM_DEV_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    )
    .server
    .expect("dev server starts")
}

fn client(srv: &TestServer, secret: &str) -> Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(&srv.addr)
        .credentials_provider(Credentials::new(ACCESS_KEY_ID, secret, None, None, "test"))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// The AWS error code of a failed call.
fn code<E, R>(e: aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string)
        .unwrap_or_else(|| format!("not a service error: {e:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_sdk_works_unchanged() {
    let srv = server();
    let kms = client(&srv, SECRET);

    let key = kms
        .create_key()
        .description("from the rust sdk")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(key.key_state, Some(KeyState::Enabled));
    assert_eq!(key.key_spec, Some(KeySpec::SymmetricDefault));
    let id = key.key_id.clone();
    kms.create_alias()
        .alias_name("alias/rust")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();

    let ct = kms
        .encrypt()
        .key_id("alias/rust")
        .plaintext(Blob::new(b"hello from rust".to_vec()))
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(ct.key_id, key.arn);
    let blob = ct.ciphertext_blob.unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"hello from rust");
    let e = kms
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("tenant", "other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidCiphertextException");

    let dk = kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.plaintext.as_ref().unwrap().as_ref().len(), 32);
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext, dk.plaintext);

    let listed = kms.list_keys().limit(10).send().await.unwrap();
    assert!(
        listed
            .keys
            .unwrap_or_default()
            .iter()
            .any(|k| k.key_id.as_deref() == Some(id.as_str()))
    );

    kms.disable_key().key_id(&id).send().await.unwrap();
    let e = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "DisabledException");

    let e = kms
        .describe_key()
        .key_id("alias/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "NotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_and_bad_credentials() {
    let srv = server();
    let kms = client(&srv, SECRET);
    let key = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let sig = kms
        .sign()
        .key_id(&key.key_id)
        .message(Blob::new(b"release".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    let ok = kms
        .verify()
        .key_id(&key.key_id)
        .message(Blob::new(b"release".to_vec()))
        .signature(sig.clone())
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    assert!(ok.signature_valid);
    let e = kms
        .verify()
        .key_id(&key.key_id)
        .message(Blob::new(b"tampered".to_vec()))
        .signature(sig)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "KMSInvalidSignatureException");

    let e = client(&srv, "not-the-secret")
        .list_keys()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidSignatureException");
}

/// BYOK through the Rust SDK: its wrapping-key and token blobs, and its `DateTime` encoding
/// of ValidTo (which arrives with a fraction of a second).
#[tokio::test(flavor = "multi_thread")]
async fn importing_expiring_material() {
    use aws_sdk_kms::primitives::DateTime;
    use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, OriginType, WrappingKeySpec};

    let srv = server();
    let kms = client(&srv, SECRET);
    let key = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(key.key_state, Some(KeyState::PendingImport));
    let params = kms
        .get_parameters_for_import()
        .key_id(&key.key_id)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let wrapped =
        strongroom_crypto::keys::rsa_oaep_encrypt(params.public_key.unwrap().as_ref(), &[0x5a; 32])
            .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let valid_to = now.as_secs() as i64 + 86400;
    kms.import_key_material()
        .key_id(&key.key_id)
        .import_token(params.import_token.unwrap())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialExpires)
        .valid_to(DateTime::from_secs_and_nanos(valid_to, 250_000_000))
        .send()
        .await
        .unwrap();
    let md = kms
        .describe_key()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::Enabled));
    assert_eq!(
        md.expiration_model,
        Some(ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(md.valid_to.map(|t| t.secs()), Some(valid_to));
}
