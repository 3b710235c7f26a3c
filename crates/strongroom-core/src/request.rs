//! Who is asking, through which protocol, and which operation: what every `KeyService` call
//! receives besides its input.

use std::fmt;

use zeroize::Zeroize;

macro_rules! secret_text {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(String);

        impl $name {
            /// Wraps the secret text.
            pub fn new(s: String) -> Self {
                Self(s)
            }

            /// The secret text. Callers say why they need it.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }
    };
}

secret_text!(
    /// A bearer token as presented by a client. Secret: redacted in `Debug`, wiped on drop.
    BearerToken
);

secret_text!(
    /// The secret half of an AWS-style access key pair, shown once when the pair is created.
    /// Redacted in `Debug`, wiped on drop.
    SecretAccessKey
);

/// A request signed with AWS Signature Version 4, as the AWS front-end read it. The front-end
/// recomputes the canonical request and the string to sign from what it received; core looks
/// up the access key, checks the scope and the signing time, and compares the signature in
/// constant time. The secret access key never leaves core.
pub struct SigV4Request {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// The scope's date, `YYYYMMDD`.
    pub scope_date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service (`kms`).
    pub service: String,
    /// The signing time (`X-Amz-Date`), seconds since the epoch.
    pub signed_at: i64,
    /// The string to sign, recomputed from the request.
    pub string_to_sign: String,
    /// The signature the client sent (32 bytes, decoded from hex).
    pub signature: Vec<u8>,
    /// `X-Amz-Security-Token`, required with session credentials.
    pub session_token: Option<BearerToken>,
}

impl fmt::Debug for SigV4Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Request")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// The protocol a request arrived through. Recorded in audit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The native REST API under `/v1/`.
    Native,
    /// The AWS KMS JSON 1.1 API at `POST /`.
    Aws,
    /// The Kubernetes KMS v2 plugin (gRPC on a unix socket).
    K8sKms,
    /// The Vault Transit API under `/v1/<mount>/`.
    VaultTransit,
    /// Strongroom's own background jobs (scheduled rotation and destruction).
    Scheduler,
}

impl Protocol {
    /// The audit name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::Aws => "aws",
            Protocol::K8sKms => "k8s-kms",
            Protocol::VaultTransit => "vault-transit",
            Protocol::Scheduler => "scheduler",
        }
    }
}

/// Everything about a request that is not its input.
#[derive(Debug)]
pub struct RequestContext {
    /// Returned to the client and written to the audit log.
    pub request_id: String,
    /// The credential presented, if any.
    pub token: Option<BearerToken>,
    /// Where it came from.
    pub protocol: Protocol,
    /// The client's address, if known.
    pub client_addr: Option<String>,
    /// SHA-256 of the client's TLS certificate, when it presented one that chains to the
    /// configured client CA (mutual TLS). Used when no token is given.
    pub client_cert: Option<[u8; 32]>,
    /// A SigV4 signature (the AWS API). Used when no token is given.
    pub sigv4: Option<SigV4Request>,
    /// A principal the transport vouches for: the Kubernetes KMS plugin's unix socket, which
    /// only the server's own user can open, acts as the principal it was configured with.
    /// Honoured for `Protocol::K8sKms` only, and only when no other credential is given.
    pub socket_principal: Option<String>,
    /// The client's own id for the request, recorded in the audit event (at most 128
    /// characters of `A-Z a-z 0-9 - _ . :`; front-ends refuse others).
    pub client_request_id: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal's name (`root` for the root token).
    pub name: String,
    /// The id of the token used (never the secret).
    pub token_id: String,
}

/// Proof that a request was authenticated and authorised. Only `KeyService` builds one, so
/// no operation can run without passing the check.
#[derive(Debug)]
pub struct Authorized {
    pub(crate) principal: Principal,
}

impl Authorized {
    /// The authorised principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// Every operation `KeyService` performs, as named in the audit log and in `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the names are the documentation; see docs/api.md
pub enum Operation {
    CreateKeyRing,
    GetKeyRing,
    ListKeyRings,
    CreateKey,
    GetKey,
    ListKeys,
    UpdateKey,
    EnableKey,
    DisableKey,
    SetPrimaryVersion,
    CreateVersion,
    GetVersion,
    ListVersions,
    EnableVersion,
    DisableVersion,
    ScheduleVersionDestruction,
    RestoreVersion,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    CreateAlias,
    UpdateAlias,
    DeleteAlias,
    GetAlias,
    ListAliases,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    ReEncrypt,
    AsymmetricDecrypt,
    AsymmetricEncrypt,
    GenerateDataKeyPair,
    GetPublicKey,
    ExportKey,
    Sign,
    Verify,
    Mac,
    MacVerify,
    DeriveSharedSecret,
    GenerateRandom,
    Hash,
    CreateToken,
    LookupToken,
    ListTokens,
    RevokeToken,
    CreateAccessKey,
    ListAccessKeys,
    RevokeAccessKey,
    GetImportParameters,
    ImportKeyMaterial,
    DeleteImportedKeyMaterial,
    CreateGrant,
    ListGrants,
    RetireGrant,
    RevokeGrant,
    ScheduledRotation,
    ScheduledDestruction,
    ScheduledKeyDeletion,
    ScheduledMaterialExpiry,
    CreatePrincipal,
    UpdatePrincipal,
    GetPrincipal,
    ListPrincipals,
    PutPolicy,
    DeletePolicy,
    GetPolicy,
    ListPolicies,
    ValidatePolicy,
    TestPolicy,
    QueryAudit,
    ReadMetrics,
    CreateBackup,
    ListProviders,
    GetProviderView,
    CreateKeySet,
    UpdateKeySet,
    GetKeySet,
    ListKeySets,
    DeleteKeySet,
    KeySetGenerateDataKey,
    KeySetWrap,
    KeySetDecrypt,
    PutIssuer,
    ListIssuers,
    DeleteIssuer,
    ExchangeToken,
    RejectedRequest,
}

impl Operation {
    /// The audit and documentation name.
    pub fn as_str(self) -> &'static str {
        use Operation::*;
        match self {
            CreateKeyRing => "create-key-ring",
            GetKeyRing => "get-key-ring",
            ListKeyRings => "list-key-rings",
            CreateKey => "create-key",
            GetKey => "get-key",
            ListKeys => "list-keys",
            UpdateKey => "update-key",
            EnableKey => "enable-key",
            DisableKey => "disable-key",
            SetPrimaryVersion => "set-primary-version",
            CreateVersion => "create-version",
            GetVersion => "get-version",
            ListVersions => "list-versions",
            EnableVersion => "enable-version",
            DisableVersion => "disable-version",
            ScheduleVersionDestruction => "schedule-version-destruction",
            RestoreVersion => "restore-version",
            ScheduleKeyDeletion => "schedule-key-deletion",
            CancelKeyDeletion => "cancel-key-deletion",
            CreateAlias => "create-alias",
            UpdateAlias => "update-alias",
            DeleteAlias => "delete-alias",
            GetAlias => "get-alias",
            ListAliases => "list-aliases",
            Encrypt => "encrypt",
            Decrypt => "decrypt",
            GenerateDataKey => "generate-data-key",
            ReEncrypt => "re-encrypt",
            AsymmetricDecrypt => "asymmetric-decrypt",
            AsymmetricEncrypt => "asymmetric-encrypt",
            GenerateDataKeyPair => "generate-data-key-pair",
            GetPublicKey => "get-public-key",
            ExportKey => "export-key",
            Sign => "sign",
            Verify => "verify",
            Mac => "mac",
            MacVerify => "mac-verify",
            DeriveSharedSecret => "derive-shared-secret",
            GenerateRandom => "generate-random",
            Hash => "hash",
            CreateToken => "create-token",
            LookupToken => "lookup-token",
            ListTokens => "list-tokens",
            RevokeToken => "revoke-token",
            CreateAccessKey => "create-access-key",
            ListAccessKeys => "list-access-keys",
            RevokeAccessKey => "revoke-access-key",
            GetImportParameters => "get-import-parameters",
            ImportKeyMaterial => "import-key-material",
            DeleteImportedKeyMaterial => "delete-imported-key-material",
            CreateGrant => "create-grant",
            ListGrants => "list-grants",
            RetireGrant => "retire-grant",
            RevokeGrant => "revoke-grant",
            ScheduledRotation => "scheduled-rotation",
            ScheduledDestruction => "scheduled-destruction",
            ScheduledKeyDeletion => "scheduled-key-deletion",
            ScheduledMaterialExpiry => "scheduled-material-expiry",
            CreatePrincipal => "create-principal",
            UpdatePrincipal => "update-principal",
            GetPrincipal => "get-principal",
            ListPrincipals => "list-principals",
            PutPolicy => "put-policy",
            DeletePolicy => "delete-policy",
            GetPolicy => "get-policy",
            ListPolicies => "list-policies",
            ValidatePolicy => "validate-policy",
            TestPolicy => "test-policy",
            QueryAudit => "query-audit",
            ReadMetrics => "read-metrics",
            CreateBackup => "create-backup",
            ListProviders => "list-providers",
            GetProviderView => "get-provider-view",
            CreateKeySet => "create-key-set",
            UpdateKeySet => "update-key-set",
            GetKeySet => "get-key-set",
            ListKeySets => "list-key-sets",
            DeleteKeySet => "delete-key-set",
            KeySetGenerateDataKey => "key-set-generate-data-key",
            KeySetWrap => "key-set-wrap",
            KeySetDecrypt => "key-set-decrypt",
            PutIssuer => "put-issuer",
            ListIssuers => "list-issuers",
            DeleteIssuer => "delete-issuer",
            ExchangeToken => "exchange-token",
            RejectedRequest => "rejected-request",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let t = BearerToken::new("srt_CANARY".into());
        assert!(!format!("{t:?}").contains("CANARY"));
        let ctx = RequestContext {
            request_id: "r".into(),
            token: Some(t),
            protocol: Protocol::Native,
            client_addr: None,
            client_cert: None,
            sigv4: None,
            socket_principal: None,
            client_request_id: None,
        };
        assert!(!format!("{ctx:?}").contains("CANARY"));
        let k = SecretAccessKey::new("CANARYSECRET".into());
        assert_eq!(format!("{k:?}"), "SecretAccessKey([REDACTED])");
    }
}
