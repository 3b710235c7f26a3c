//! Command-line interface: `serve`, and client commands for every native API operation.
//! Client commands reach the server named by `STRONGROOM_ADDR` with `STRONGROOM_TOKEN`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};
use strongroom_client::{B64, Client, Method};

use crate::output::{self, Format, line};
use crate::serve::{self, ServeArgs};

const KEY_HELP: &str = "Key: <key ring>/<key>, alias/<alias>, or a key id";

/// Strongroom: a key management service you run yourself.
///
/// Run the server with `strongroom serve` (or `strongroom serve --dev` to try it out). The
/// other commands talk to a running server: set STRONGROOM_ADDR (default
/// http://127.0.0.1:8400) and STRONGROOM_TOKEN (a token from `serve`'s first start or
/// `strongroom token create`).
///
/// Keys are named <key ring>/<key> (e.g. payments/card-data), alias/<alias>, or by id.
/// Binary data goes in and out as files (--in/--out, `-` for stdin/stdout) or base64.
#[derive(Debug, Parser)]
#[command(name = "strongroom", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Server address for client commands.
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_ADDR",
        default_value = "http://127.0.0.1:8400",
        value_name = "URL"
    )]
    addr: String,

    /// Bearer token for client commands.
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Extra CA certificate(s) to trust for an https:// server (PEM).
    #[arg(long, global = true, env = "STRONGROOM_CACERT", value_name = "PEM")]
    ca_cert: Option<PathBuf>,

    /// Client certificate for mutual TLS (PEM); with --client-key.
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_CLIENT_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,

    /// Private key of --client-cert (PEM).
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,

    /// Output format of client commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Strongroom server.
    Serve(Box<ServeArgs>),
    /// Manage key rings (containers for keys).
    #[command(subcommand)]
    Keyring(KeyringCmd),
    /// Manage keys: create, list, update, enable/disable, public keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage key versions: rotate, enable/disable, schedule destruction, restore.
    #[command(subcommand)]
    Version(VersionCmd),
    /// Manage aliases: stable names that can be re-pointed to another key.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Encrypt up to 64 KiB with a symmetric key's primary version.
    Encrypt(EncryptArgs),
    /// Decrypt a Strongroom ciphertext (the key and version are read from it).
    Decrypt(DecryptArgs),
    /// Generate a data key for envelope encryption: plaintext + wrapped copy.
    DataKey(DataKeyArgs),
    /// Re-encrypt a ciphertext under another key (or the current primary) without
    /// revealing its plaintext.
    ReEncrypt(ReEncryptArgs),
    /// Decrypt data encrypted to an asymmetric-decrypt key's public key (RSA-OAEP-SHA-256).
    AsymmetricDecrypt(AsymDecryptArgs),
    /// Sign a message or digest with a sign-verify key.
    Sign(SignArgs),
    /// Verify a signature with a sign-verify key.
    Verify(VerifyArgs),
    /// Compute or verify an HMAC with a mac key.
    #[command(subcommand)]
    Mac(MacCmd),
    /// Get random bytes from the server's generator.
    Random(RandomArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage principals: the users and workloads tokens act as, with roles and labels.
    #[command(subcommand)]
    Principal(PrincipalCmd),
    /// Manage Cedar policies: who may do what (see docs/policy.md).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Trust OIDC issuers (Kubernetes, GitHub Actions, cloud workload identity) whose JWTs
    /// workloads exchange for Strongroom tokens.
    #[command(subcommand)]
    Federation(FederationCmd),
    /// Exchange a JWT from a trusted issuer for a Strongroom token; prints the token.
    ///
    /// export STRONGROOM_TOKEN=$(strongroom login --jwt-file /var/run/secrets/tokens/strongroom)
    #[command(verbatim_doc_comment)]
    Login {
        /// File holding the JWT (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        jwt_file: PathBuf,
        /// The issuer's name in Strongroom (default: chosen by the token's iss).
        #[arg(long)]
        issuer: Option<String>,
        /// Requested lifetime (capped by the issuer's max and the JWT's own expiry).
        #[arg(long)]
        ttl: Option<String>,
        /// Get AWS session credentials (for AWS SDKs and the aws CLI) instead of a token;
        /// prints `export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_SESSION_TOKEN=…`.
        #[arg(long)]
        aws: bool,
    },
    /// Measure a running server: throughput and latency percentiles per operation, against a
    /// baseline (health) measured in the same run. Creates key ring `bench` and keys in it.
    Bench(crate::bench::BenchArgs),
    /// Work with audit logs (offline: reads the file, not the server).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Operate a deployment: back up a running server, restore a backup (docs/operations.md).
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Key providers this server is configured with (docs/providers.md).
    #[command(subcommand)]
    Provider(ProviderCmd),
    /// Key sets: one data key wrapped by member keys across providers, opened by any one
    /// of them (docs/key-sets.md). Use with `strongroom envelope encrypt --key-set NAME`.
    #[command(subcommand)]
    KeySet(KeySetCmd),
    /// Envelope encryption of files and pipes of any size: the data never reaches the
    /// server, only a fresh data key wrapped by your key does (docs/envelope-format.md).
    #[command(subcommand)]
    Envelope(crate::envelope_cmd::EnvelopeCmd),
}

#[derive(Debug, Subcommand)]
enum ProviderCmd {
    /// List the key providers with a health probe of each and its circuit breaker (needs
    /// list-providers).
    List,
}

#[derive(Debug, Subcommand)]
enum KeySetCmd {
    /// Create a key set (needs create-key-set).
    ///
    /// strongroom key-set create payments --member software:payments/data \
    ///     --member aws:alias/payments --member vault:payments
    #[command(verbatim_doc_comment)]
    Create {
        /// Key set name (a-z 0-9 - _, up to 64 characters).
        name: String,
        /// A member as <provider>:<key>, in preference order (repeat, 1 to 16). `software`
        /// is Strongroom's own keys (software:<ring>/<key>); other providers are the ones in
        /// `strongroom provider list`.
        #[arg(long = "member", value_name = "PROVIDER:KEY", required = true)]
        members: Vec<String>,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        labels: Labels,
    },
    /// Replace a key set's members (and description and labels). Envelopes made before keep
    /// their wrapped keys: `strongroom envelope rewrap --key-set NAME FILE...` re-wraps them.
    Update {
        /// Key set name.
        name: String,
        /// The new members, in preference order (repeat). Members left out are retired: they
        /// still open what they wrapped, and wrap nothing new.
        #[arg(long = "member", value_name = "PROVIDER:KEY", required = true)]
        members: Vec<String>,
        /// Forget the retired members: data keys only they wrapped no longer open through
        /// this key set (rewrap envelopes first).
        #[arg(long)]
        forget_retired: bool,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        labels: Labels,
    },
    /// Show a key set, with each member's provider circuit breaker on this server.
    Get {
        /// Key set name.
        name: String,
    },
    /// List key sets.
    List,
    /// Delete a key set; its member keys are untouched.
    Delete {
        /// Key set name.
        name: String,
    },
}

/// A key set with its members as one readable line each (`member [breaker]`).
fn key_set_view(mut v: Value) -> Value {
    for field in ["members", "retired"] {
        let lines: Vec<Value> = v[field]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        let name = m["member"].as_str().unwrap_or_default();
                        Value::String(match m["breaker"].as_str() {
                            Some(b) => format!("{name} [{b}]"),
                            None => format!("{name} [no such provider here]"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        v[field] = Value::Array(lines);
    }
    v
}

#[derive(Debug, Subcommand)]
enum OperatorCmd {
    /// Take a backup of a running server (needs the create-backup permission): every key
    /// ring, key and version (material stays sealed under the root key), alias, principal,
    /// token, policy, issuer and grant, in one consistent snapshot, into an encrypted,
    /// integrity-protected file. The server keeps serving.
    Backup {
        /// Where to write the backup (refused if it exists; `-` for stdout).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into an empty data dir or an empty PostgreSQL database (offline:
    /// no server runs on the target). The backup is verified with the root key first; a
    /// wrong key, a changed file or a target that is not empty is refused and nothing is
    /// written. Then start `serve` on the target with the same --root-key-file.
    Restore {
        /// The backup file.
        #[arg(long = "from", value_name = "FILE")]
        from: PathBuf,
        /// The root key the backup was made with.
        #[arg(long, value_name = "PATH", env = "STRONGROOM_ROOT_KEY_FILE")]
        root_key_file: PathBuf,
        /// The new data dir (must not exist, or be empty).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "database_url",
            conflicts_with = "database_url"
        )]
        data_dir: Option<PathBuf>,
        /// Restore into this PostgreSQL database instead (must hold no Strongroom data).
        #[arg(
            long,
            value_name = "URL",
            env = "STRONGROOM_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: Option<String>,
    },
    /// Show what a backup file holds (its header: when, which release, row counts, audit
    /// position). Needs no key and checks no integrity: `restore` does.
    Inspect {
        /// The backup file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PrincipalCmd {
    /// Create a principal.
    Create {
        /// Name (A-Z a-z 0-9 _ - @ .), e.g. payments or alice@example.com.
        name: String,
        /// user or workload.
        #[arg(long, default_value = "workload")]
        kind: String,
        /// Role (repeatable): key-admin, key-user, auditor, security-admin, or your own.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        #[command(flatten)]
        labels: Labels,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        /// Own quota overriding the server default, as class=requests-per-second
        /// (repeatable; classes crypto, read, write, keygen; 0 = unlimited).
        #[arg(long = "rate-limit", value_name = "CLASS=RPS")]
        rate_limits: Vec<String>,
        /// Client certificate (PEM file, repeatable) that authenticates as this principal
        /// over mutual TLS; its SHA-256 fingerprint is registered.
        #[arg(long = "tls-cert", value_name = "PEM")]
        tls_certs: Vec<PathBuf>,
    },
    /// Show a principal.
    Get {
        /// Name.
        name: String,
    },
    /// List principals.
    List(Paging),
    /// Change roles, labels, description, or disable/enable.
    Update {
        /// Name.
        name: String,
        /// Replace all roles with these (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Remove all roles.
        #[arg(long, conflicts_with = "roles")]
        clear_roles: bool,
        /// Replace all labels with these (repeatable key=value).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Disable: the principal's tokens stop working at once.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Re-enable a disabled principal.
        #[arg(long)]
        enable: bool,
        /// Replace the principal's quotas (repeatable class=requests-per-second).
        #[arg(long = "rate-limit", value_name = "CLASS=RPS")]
        rate_limits: Vec<String>,
        /// Replace the principal's client certificates (PEM files, repeatable).
        #[arg(long = "tls-cert", value_name = "PEM")]
        tls_certs: Vec<PathBuf>,
        /// Remove all client certificates.
        #[arg(long, conflicts_with = "tls_certs")]
        clear_tls_certs: bool,
    },
    /// AWS-style access key pairs, for signing AWS KMS API requests (SigV4).
    #[command(subcommand)]
    AccessKey(AccessKeyCmd),
    /// Create a token for a principal (shown once).
    Token {
        /// Name.
        name: String,
        /// Lifetime (e.g. 1h, 30d; at most 366d, never past your own token's expiry).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Debug, Subcommand)]
enum AccessKeyCmd {
    /// Create an access key pair for a principal. The secret is shown once: give both
    /// halves to the AWS client (`aws configure`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).
    /// A principal holds at most two active pairs; to rotate, create, switch, then revoke.
    Create {
        /// Principal name.
        principal: String,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List a principal's access keys (never their secrets).
    List {
        /// Principal name.
        principal: String,
    },
    /// Revoke an access key: requests signed with it fail at once.
    Revoke {
        /// The access key id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Create or replace a policy document from a .cedar file (validated first).
    Put {
        /// Document name, e.g. payments-team.
        name: String,
        /// The Cedar file (`-` for stdin).
        file: PathBuf,
        /// The version being replaced (from `policy get`); omit to create.
        #[arg(long)]
        version: Option<i64>,
    },
    /// Show a policy document (the Cedar text with -o table; everything with -o json).
    Get {
        /// Document name.
        name: String,
    },
    /// List policy documents.
    List,
    /// Every version of a document, oldest first.
    History {
        /// Document name.
        name: String,
    },
    /// Delete a document (its history stays).
    Delete {
        /// Document name.
        name: String,
        /// The version being deleted (from `policy get`).
        #[arg(long)]
        version: i64,
    },
    /// Check a .cedar file against the schema without storing it; errors name the line.
    Validate {
        /// The Cedar file (`-` for stdin).
        file: PathBuf,
    },
    /// Would PRINCIPAL be allowed ACTION on a key, key ring or the service, and which policy
    /// decides? Performs nothing. Exits 0 when allowed, 2 when denied.
    Test {
        /// Principal name.
        principal: String,
        /// Action, e.g. decrypt, create-key, read-audit (see `policy schema`).
        action: String,
        /// The key: <key ring>/<key>, alias/<alias> or an id.
        #[arg(long, conflicts_with = "key_ring")]
        key: Option<String>,
        /// A key ring (for create-key, list-keys, get-key-ring).
        #[arg(long)]
        key_ring: Option<String>,
        #[command(flatten)]
        context: ContextArgs,
        /// The client address the request would come from.
        #[arg(long)]
        source_ip: Option<String>,
    },
    /// Print the Cedar schema policies are written against.
    Schema,
}

#[derive(Debug, Subcommand)]
enum FederationCmd {
    /// Create or replace a trusted issuer.
    Put {
        /// Local name, e.g. k8s-prod.
        name: String,
        /// The issuer URL (the tokens' iss claim).
        #[arg(long)]
        issuer: String,
        /// Accepted audience (repeatable).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// JWKS document file.
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// JWKS URL (fetched, cached, refreshed on an unknown kid at most once a minute).
        #[arg(long, value_name = "URL", required_unless_present = "jwks_file")]
        jwks_uri: Option<String>,
        /// Mapping rule (repeatable, tried in order): PRINCIPAL;CLAIM=PATTERN[;CLAIM=PATTERN…].
        /// A pattern ending in * matches by prefix.
        /// Example: 'payments;sub=system:serviceaccount:payments:*'
        #[arg(long = "rule", required = true, value_name = "RULE")]
        rules: Vec<String>,
        /// Longest lifetime of an exchanged token.
        #[arg(long, default_value = "1h")]
        max_ttl: String,
    },
    /// List trusted issuers.
    List,
    /// Remove a trusted issuer (tokens already issued stay valid until they expire).
    Delete {
        /// Local name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct AuditFilter {
    /// Events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only this principal.
    #[arg(long)]
    principal: Option<String>,
    /// Only this key (<key ring>/<key> or id).
    #[arg(long)]
    key: Option<String>,
    /// Only this operation (e.g. decrypt).
    #[arg(long)]
    operation: Option<String>,
    /// Only ok or error.
    #[arg(long)]
    outcome: Option<String>,
}

impl AuditFilter {
    fn query(&self) -> Vec<String> {
        let mut q = Vec::new();
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("principal", &self.principal),
            ("key", &self.key),
            ("operation", &self.operation),
            ("outcome", &self.outcome),
        ] {
            if let Some(v) = v {
                q.push(format!(
                    "{k}={}",
                    seg(v)
                        .replace('+', "%2B")
                        .replace('&', "%26")
                        .replace('=', "%3D")
                ));
            }
        }
        q
    }
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Query the server's audit log (needs the read-audit permission).
    Query {
        #[command(flatten)]
        filter: AuditFilter,
        /// Most events (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after this sequence number (from a previous page).
        #[arg(long)]
        after_seq: Option<u64>,
    },
    /// Print new audit events as they are written (JSON lines), until interrupted.
    Tail {
        #[command(flatten)]
        filter: AuditFilter,
        /// Start after this sequence number (default: only events written from now on).
        #[arg(long)]
        after_seq: Option<u64>,
        /// Stop after printing this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Merge several nodes' audit logs into one timeline (JSON lines, time order, each event
    /// with a `node` field). Every log is verified first, with the audit-signing.pub beside
    /// it; if any is not intact nothing is merged and the exit code is 3. The node name is
    /// the `node.id` beside the log, else its directory's name.
    Merge {
        /// The audit logs (e.g. node-a/audit.log node-b/audit.log).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Write the timeline here instead of stdout (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify an audit log's hash chain and signed checkpoints.
    ///
    /// Reports, with line and sequence numbers: malformed (edited) lines, broken links,
    /// missing ranges, reordered lines, forged checkpoints, a torn tail, and (with
    /// --expect-checkpoint) a log older than the data dir says it should be. Exits 0 when the
    /// log is intact (a torn tail alone is reported but not a failure), 3 otherwise.
    Verify {
        /// The audit log (e.g. ./strongroom-data/audit.log).
        file: PathBuf,
        /// The audit signing public key (PEM). Default: audit-signing.pub next to the log.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
        /// Fail unless the log holds a checkpoint at or after this sequence number.
        #[arg(long, value_name = "SEQ")]
        expect_checkpoint: Option<u64>,
    },
}

#[derive(Debug, Args)]
struct Labels {
    /// Label as key=value (repeatable). Keys: a-z 0-9 _ -, starting with a letter.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
}

#[derive(Debug, Args)]
struct Paging {
    /// Items per page (1-1000).
    #[arg(long)]
    page_size: Option<u32>,
    /// Page token from a previous listing.
    #[arg(long)]
    page_token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeyringCmd {
    /// Create a key ring.
    Create {
        /// Key ring name (A-Z a-z 0-9 _ -, up to 63 characters).
        name: String,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        labels: Labels,
    },
    /// Show a key ring.
    Get {
        /// Key ring name.
        name: String,
    },
    /// List key rings.
    List(Paging),
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Create a key and its first version.
    ///
    /// Purposes and algorithms:
    ///   encrypt-decrypt     aes-256-gcm (default), chacha20-poly1305
    ///   asymmetric-decrypt  rsa-oaep-{2048,3072,4096}-sha256 (default 3072)
    ///   sign-verify         ecdsa-p256-sha256 (default), ecdsa-p384-sha384,
    ///                       ecdsa-p521-sha512, ecdsa-secp256k1-sha256, ed25519,
    ///                       ml-dsa-44, ml-dsa-65, ml-dsa-87,
    ///                       rsa-pss-{2048,3072,4096}-{sha256,sha384,sha512},
    ///                       rsa-pkcs1-{2048,3072,4096}-{sha256,sha384,sha512}
    ///   mac                 hmac-sha256 (default), hmac-sha224, hmac-sha384, hmac-sha512
    ///   key-agreement       ecdh-p256 (default), ecdh-p384, ecdh-p521
    #[command(verbatim_doc_comment)]
    Create {
        /// <key ring>/<key>; the key ring must exist.
        key: String,
        /// Purpose (inferred from --algorithm when omitted).
        #[arg(long)]
        purpose: Option<String>,
        /// Algorithm (the purpose's default when omitted).
        #[arg(long)]
        algorithm: Option<String>,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        labels: Labels,
        /// Rotate automatically every DURATION (e.g. 90d; encrypt-decrypt keys only).
        #[arg(long, value_name = "DURATION")]
        rotation_period: Option<String>,
        /// First automatic rotation (RFC 3339); default now + rotation period.
        #[arg(long, value_name = "TIME")]
        next_rotation_time: Option<String>,
        /// Allow the key material to be exported later (default: never). Cannot be turned on
        /// after creation.
        #[arg(long)]
        exportable: bool,
        /// Make an external key: bound to a key of this provider (`strongroom provider
        /// list`), which holds the material; Strongroom keeps policy, audit, aliases and state
        /// (docs/providers.md). Needs --provider-key.
        #[arg(long, requires = "provider_key")]
        provider: Option<String>,
        /// The provider's name for the key (an AWS key id, ARN or alias/…; a Transit key
        /// name; a PKCS#11 key label).
        #[arg(long, requires = "provider")]
        provider_key: Option<String>,
        /// Generate the key inside this HSM provider (a pkcs11 provider): protection hsm,
        /// the material made in the token and never out of it.
        #[arg(long, value_name = "PROVIDER", conflicts_with_all = ["provider", "provider_key"])]
        hsm: Option<String>,
    },
    /// Show a key.
    Get {
        #[arg(help = KEY_HELP)]
        key: String,
    },
    /// List the keys of a key ring.
    List {
        /// Key ring name.
        ring: String,
        /// Only keys with this label (repeatable), as key=value.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Only keys in this state (enabled, disabled).
        #[arg(long)]
        state: Option<String>,
        /// Only keys of this purpose.
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Change a key's description, labels, rotation schedule or exportability.
    Update {
        /// <key ring>/<key>.
        key: String,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Replace all labels with these (repeatable key=value).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Remove all labels.
        #[arg(long, conflicts_with = "labels")]
        clear_labels: bool,
        /// Rotate automatically every DURATION (e.g. 90d).
        #[arg(long, value_name = "DURATION", conflicts_with = "no_rotation")]
        rotation_period: Option<String>,
        /// Turn automatic rotation off.
        #[arg(long)]
        no_rotation: bool,
        /// Next automatic rotation (RFC 3339).
        #[arg(long, value_name = "TIME")]
        next_rotation_time: Option<String>,
        /// Forbid export from now on (cannot be undone).
        #[arg(long)]
        not_exportable: bool,
    },
    /// Enable a key (its enabled versions become usable again).
    Enable {
        /// <key ring>/<key>.
        key: String,
        /// Also enable a provider-held key at its provider (AWS KMS: the key; Cloud KMS and
        /// Key Vault: the current version), first.
        #[arg(long)]
        at_provider: bool,
    },
    /// Disable a key: every operation with it is refused until enabled.
    Disable {
        /// <key ring>/<key>.
        key: String,
        /// Also disable a provider-held key at its provider, first (AWS KMS: the key; Cloud
        /// KMS and Key Vault: the current version). This stops every user of that provider
        /// key, not only Strongroom; without it only Strongroom refuses.
        #[arg(long)]
        at_provider: bool,
    },
    /// Show what a provider-held key's provider says of it (state, rotation schedule,
    /// versions) and where it drifts from Strongroom's record. Read-only.
    ProviderView {
        /// <key ring>/<key>.
        key: String,
    },
    /// Schedule the deletion of a whole key. Until then nothing may use or change it and
    /// `key cancel-deletion` undoes it; at that time every version's material is wiped and
    /// its aliases removed, and its ciphertexts can never be decrypted again.
    Delete {
        /// <key ring>/<key>.
        key: String,
        /// How long until the deletion (1d to 120d).
        #[arg(long, default_value = "30d")]
        window: String,
    },
    /// Cancel a scheduled deletion. The key comes back disabled: enable it to use it.
    CancelDeletion {
        /// <key ring>/<key>.
        key: String,
    },
    /// Make an enabled version the primary (used for new encryptions and signatures).
    SetPrimary {
        /// <key ring>/<key>.
        key: String,
        /// Version number.
        version: u32,
    },
    /// Get an asymmetric key's public key (PEM by default).
    PublicKey {
        /// <key ring>/<key>.
        key: String,
        /// Version (default: primary).
        #[arg(long)]
        version: Option<u32>,
        /// Write DER bytes to this file instead of printing PEM.
        #[arg(long, value_name = "FILE")]
        der_out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum VersionCmd {
    /// List a key's versions.
    List {
        /// <key ring>/<key>.
        key: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show one version.
    Get {
        /// <key ring>/<key>.
        key: String,
        /// Version number.
        version: u32,
    },
    /// Create a new version (rotate). It becomes primary unless --no-primary.
    Create {
        /// <key ring>/<key>.
        key: String,
        /// Keep the current primary.
        #[arg(long)]
        no_primary: bool,
    },
    /// Enable a disabled version.
    Enable {
        /// <key ring>/<key>.
        key: String,
        /// Version number.
        version: u32,
    },
    /// Disable a version: operations with it are refused until enabled.
    Disable {
        /// <key ring>/<key>.
        key: String,
        /// Version number.
        version: u32,
    },
    /// Schedule a version's destruction. Until then `version restore` undoes it; after, the
    /// material is wiped and its ciphertexts can never be decrypted.
    Destroy {
        /// <key ring>/<key>.
        key: String,
        /// Version number.
        version: u32,
        /// Soft-delete window, 1d to 120d.
        #[arg(long, default_value = "30d", value_name = "DURATION")]
        window: String,
    },
    /// Cancel a scheduled destruction; the version comes back disabled.
    Restore {
        /// <key ring>/<key>.
        key: String,
        /// Version number.
        version: u32,
    },
}

#[derive(Debug, Subcommand)]
enum AliasCmd {
    /// Create an alias for a key.
    Create {
        /// Alias name (A-Z a-z 0-9 _ - /).
        name: String,
        #[arg(help = KEY_HELP)]
        key: String,
    },
    /// Re-point an alias to another key.
    Update {
        /// Alias name.
        name: String,
        #[arg(help = KEY_HELP)]
        key: String,
    },
    /// Delete an alias (the key is untouched).
    Delete {
        /// Alias name.
        name: String,
    },
    /// Show an alias.
    Get {
        /// Alias name.
        name: String,
    },
    /// List aliases.
    List {
        /// Only aliases of this key.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

#[derive(Debug, Args)]
struct Input {
    /// Read the input from FILE (`-` for stdin).
    #[arg(long = "in", value_name = "FILE", conflicts_with = "b64")]
    in_file: Option<PathBuf>,
    /// The input as base64.
    #[arg(long = "b64", value_name = "BASE64")]
    b64: Option<String>,
}

#[derive(Debug, Args)]
struct ContextArgs {
    /// Encryption context pair (repeatable) as key=value; needed again to decrypt.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    pairs: Vec<String>,
}

#[derive(Debug, Args)]
struct Out {
    /// Write the result's bytes to FILE (`-` for stdout) instead of printing base64.
    #[arg(long = "out", value_name = "FILE")]
    out_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EncryptArgs {
    #[arg(long, help = KEY_HELP)]
    key: String,
    #[command(flatten)]
    input: Input,
    #[command(flatten)]
    context: ContextArgs,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct DecryptArgs {
    #[command(flatten)]
    input: Input,
    #[command(flatten)]
    context: ContextArgs,
    /// Require the ciphertext to be this key's.
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct DataKeyArgs {
    #[arg(long, help = KEY_HELP)]
    key: String,
    /// Data key length in bytes (1-1024).
    #[arg(long, default_value_t = 32)]
    length: usize,
    #[command(flatten)]
    context: ContextArgs,
    /// Return only the wrapped data key.
    #[arg(long)]
    no_plaintext: bool,
}

#[derive(Debug, Args)]
struct ReEncryptArgs {
    #[command(flatten)]
    input: Input,
    /// The source ciphertext's context pair (repeatable) as key=value.
    #[arg(long = "source-context", value_name = "KEY=VALUE")]
    source_context: Vec<String>,
    /// Destination key (default: the same key's current primary).
    #[arg(long)]
    destination_key: Option<String>,
    /// The new ciphertext's context pair (repeatable) as key=value.
    #[arg(long = "destination-context", value_name = "KEY=VALUE")]
    destination_context: Vec<String>,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct AsymDecryptArgs {
    #[arg(long, help = KEY_HELP)]
    key: String,
    /// Version (default: primary).
    #[arg(long)]
    version: Option<u32>,
    #[command(flatten)]
    input: Input,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct SignArgs {
    #[arg(long, help = KEY_HELP)]
    key: String,
    /// Version (default: primary).
    #[arg(long)]
    version: Option<u32>,
    #[command(flatten)]
    input: Input,
    /// The input is a digest under the key's hash, not the message.
    #[arg(long)]
    digest: bool,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[arg(long, help = KEY_HELP)]
    key: String,
    /// Version (default: primary).
    #[arg(long)]
    version: Option<u32>,
    #[command(flatten)]
    input: Input,
    /// The input is a digest under the key's hash, not the message.
    #[arg(long)]
    digest: bool,
    /// The signature as base64.
    #[arg(
        long,
        value_name = "BASE64",
        required_unless_present = "signature_file"
    )]
    signature: Option<String>,
    /// Read the signature bytes from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "signature")]
    signature_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum MacCmd {
    /// Compute an HMAC.
    Generate {
        #[arg(long, help = KEY_HELP)]
        key: String,
        /// Version (default: primary).
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        out: Out,
    },
    /// Verify an HMAC (constant-time on the server). Exits 0 when valid, 2 when not.
    Verify {
        #[arg(long, help = KEY_HELP)]
        key: String,
        /// Version (default: primary).
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        input: Input,
        /// The MAC as base64.
        #[arg(long, value_name = "BASE64")]
        mac: String,
    },
}

#[derive(Debug, Args)]
struct RandomArgs {
    /// Number of bytes (1-1024).
    #[arg(long, default_value_t = 32)]
    length: usize,
    #[command(flatten)]
    out: Out,
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Create a token acting as you. The secret is printed once.
    Create {
        /// Lifetime (e.g. 1h, 30d; at most 366d).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Free-text description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show the token in use.
    Lookup,
    /// List tokens (never their secrets).
    List(Paging),
    /// Revoke a token by id; it stops working at once.
    Revoke {
        /// Token id (tok_…).
        id: String,
    },
}

/// `key=value` arguments as a map; a key given twice is refused.
pub(crate) fn parse_pairs(
    list: &[String],
    what: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut m = std::collections::BTreeMap::new();
    for p in list {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("{what} must be key=value, got {p:?}"))?;
        if m.insert(k.to_string(), v.to_string()).is_some() {
            bail!("{what} key {k:?} given twice");
        }
    }
    Ok(m)
}

fn pairs(list: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    Ok(parse_pairs(list, what)?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

fn parse_rules(list: &[String]) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    for r in list {
        let mut parts = r.split(';');
        let principal = parts.next().unwrap_or("").trim();
        if principal.is_empty() {
            bail!("--rule {r:?}: expected PRINCIPAL;CLAIM=PATTERN[;CLAIM=PATTERN…]");
        }
        let mut claims = Map::new();
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--rule {r:?}: {p:?} is not CLAIM=PATTERN"))?;
            claims.insert(k.trim().to_string(), v.trim().into());
        }
        if claims.is_empty() {
            bail!("--rule {r:?}: a rule must match at least one claim");
        }
        out.push(json!({"principal": principal, "claims": claims}));
    }
    Ok(Value::Array(out))
}

/// SHA-256 fingerprints of the first certificate in each PEM file.
fn fingerprints(files: &[PathBuf]) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    for f in files {
        let pem =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = B64
            .decode(body.trim())
            .ok()
            .filter(|d| !d.is_empty())
            .with_context(|| format!("{} holds no PEM certificate", f.display()))?;
        let fp: String = strongroom_crypto::hash::sha256(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(Value::String(fp));
    }
    Ok(Value::Array(out))
}

fn rates(list: &[String]) -> anyhow::Result<Value> {
    let mut m = Map::new();
    for (k, v) in pairs(list, "--rate-limit")? {
        let n: u32 =
            v.as_str().unwrap_or("").parse().with_context(|| {
                format!("--rate-limit {k}: a whole number of requests per second")
            })?;
        m.insert(k, n.into());
    }
    Ok(Value::Object(m))
}

fn read_input(input: &Input) -> anyhow::Result<Vec<u8>> {
    match (&input.in_file, &input.b64) {
        (Some(f), _) if f.as_os_str() == "-" => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .context("cannot read stdin")?;
            Ok(v)
        }
        (Some(f), _) => std::fs::read(f).with_context(|| format!("cannot read {}", f.display())),
        (None, Some(b)) => B64.decode(b.trim()).context("--b64 is not valid base64"),
        (None, None) => bail!("give the input with --in FILE (or - for stdin) or --b64 BASE64"),
    }
}

fn write_bytes(
    out: &Out,
    bytes: &[u8],
    fmt: Format,
    json: &Value,
    field: &str,
) -> anyhow::Result<()> {
    match &out.out_file {
        Some(f) if f.as_os_str() == "-" => {
            std::io::stdout()
                .write_all(bytes)
                .context("cannot write stdout")?;
        }
        Some(f) => {
            std::fs::write(f, bytes).with_context(|| format!("cannot write {}", f.display()))?;
            let mut shown = json.clone();
            if let Some(m) = shown.as_object_mut() {
                m.insert(
                    field.to_string(),
                    Value::String(format!("(written to {})", f.display())),
                );
            }
            output::object(fmt, &shown);
        }
        None => output::object(fmt, json),
    }
    Ok(())
}

fn seg(s: &str) -> String {
    // Path segments are validated names; escape the few characters that would change the path.
    s.replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23")
}

fn key_path(key: &str) -> anyhow::Result<String> {
    let (ring, k) = key
        .split_once('/')
        .with_context(|| format!("expected <key ring>/<key>, got {key:?}"))?;
    Ok(format!("/v1/keyrings/{}/keys/{}", seg(ring), seg(k)))
}

fn paging_query(p: &Paging) -> String {
    let mut q = Vec::new();
    if let Some(n) = p.page_size {
        q.push(format!("page_size={n}"));
    }
    if let Some(t) = &p.page_token {
        q.push(format!("page_token={}", seg(t)));
    }
    q.join("&")
}

fn with_query(path: String, q: &str) -> String {
    if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    }
}

const KEY_COLUMNS: &[&str] = &[
    "path",
    "purpose",
    "algorithm",
    "state",
    "primary_version",
    "rotation_period",
    "labels",
];
const VERSION_COLUMNS: &[&str] = &["version", "state", "created_at", "destroy_time"];

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli {
        command,
        addr,
        token,
        ca_cert,
        client_cert,
        client_key,
        output: fmt,
    } = cli;
    let command = match command {
        Command::Serve(args) => {
            serve::run(*args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Audit(AuditCmd::Verify {
            file,
            public_key,
            expect_checkpoint,
        }) => {
            return audit_verify(fmt, &file, public_key, expect_checkpoint);
        }
        Command::Audit(AuditCmd::Merge { files, out }) => {
            return audit_merge(&files, out.as_deref());
        }
        Command::Operator(OperatorCmd::Restore {
            from,
            root_key_file,
            data_dir,
            database_url,
        }) => {
            return operator_restore(fmt, from, root_key_file, data_dir, database_url).await;
        }
        Command::Operator(OperatorCmd::Inspect { file }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let header = strongroom_core::backup::peek_header(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            output::object(fmt, &serde_json::to_value(&header)?);
            return Ok(ExitCode::SUCCESS);
        }
        other => other,
    };
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let tls = strongroom_client::TlsOptions {
        ca_pem: ca_cert.as_ref().map(read).transpose()?,
        identity_pem: match (&client_cert, &client_key) {
            (Some(c), Some(k)) => Some([read(c)?, b"\n".to_vec(), read(k)?].concat()),
            _ => None,
        },
    };
    let c = Client::with_tls(&addr, token, &tls)?;
    let obj = |v: Value| {
        output::object(fmt, &v);
        Ok(ExitCode::SUCCESS)
    };
    match command {
        Command::Serve(_)
        | Command::Audit(AuditCmd::Verify { .. } | AuditCmd::Merge { .. })
        | Command::Operator(OperatorCmd::Restore { .. } | OperatorCmd::Inspect { .. }) => bail!("internal: handled above"),
        Command::Operator(OperatorCmd::Backup { out }) => operator_backup(&c, fmt, &out).await,
        Command::Provider(ProviderCmd::List) => {
            let v = c.call(Method::Get, "/v1/providers", None).await?;
            output::list(fmt, &v, &["name", "kind", "healthy", "breaker", "probe_ms", "error"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::KeySet(cmd) => match cmd {
            KeySetCmd::Create { name, members, description, labels } => {
                let body = json!({"name": name, "members": members, "description": description, "labels": pairs(&labels.labels, "--label")?});
                let v = c.call(Method::Post, "/v1/key-sets", Some(&body)).await?;
                obj(if fmt == Format::Json { v } else { key_set_view(v) })
            }
            KeySetCmd::Update { name, members, forget_retired, description, labels } => {
                let body = json!({"members": members, "forget_retired": forget_retired, "description": description, "labels": pairs(&labels.labels, "--label")?});
                let v = c.call(Method::Put, &format!("/v1/key-sets/{}", seg(&name)), Some(&body)).await?;
                obj(if fmt == Format::Json { v } else { key_set_view(v) })
            }
            KeySetCmd::Get { name } => {
                let v = c.call(Method::Get, &format!("/v1/key-sets/{}", seg(&name)), None).await?;
                obj(if fmt == Format::Json { v } else { key_set_view(v) })
            }
            KeySetCmd::List => {
                let mut v = c.call(Method::Get, "/v1/key-sets", None).await?;
                if fmt != Format::Json {
                    let items: Vec<Value> = v["items"].as_array().cloned().unwrap_or_default().into_iter().map(key_set_view).collect();
                    v["items"] = Value::Array(items);
                }
                output::list(fmt, &v, &["name", "members", "description"]);
                Ok(ExitCode::SUCCESS)
            }
            KeySetCmd::Delete { name } => {
                c.call(Method::Delete, &format!("/v1/key-sets/{}", seg(&name)), None).await?;
                line(&format!("deleted key set {name}"));
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Envelope(cmd) => {
            crate::envelope_cmd::run(&c, fmt, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCmd::Query { filter, limit, after_seq }) => {
            let mut q = filter.query();
            q.push(format!("limit={limit}"));
            if let Some(a) = after_seq {
                q.push(format!("after_seq={a}"));
            }
            let v = c.call(Method::Get, &with_query("/v1/audit/events".into(), &q.join("&")), None).await?;
            if fmt == Format::Json {
                output::object(fmt, &v);
            } else {
                output::list(fmt, &v, &["seq", "time", "principal", "operation", "key_ring", "key", "version", "outcome", "error_code"]);
                if let Some(n) = v["next_after_seq"].as_u64() {
                    line(&format!("more: --after-seq {n}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCmd::Tail { filter, after_seq, count }) => {
            let base = filter.query();
            let mut cursor = match after_seq {
                Some(a) => a,
                None => latest_seq(&c).await?,
            };
            let mut printed = 0usize;
            loop {
                let mut q = base.clone();
                q.push(format!("after_seq={cursor}"));
                q.push("limit=1000".into());
                let v = c.call(Method::Get, &with_query("/v1/audit/events".into(), &q.join("&")), None).await?;
                let items = v["items"].as_array().cloned().unwrap_or_default();
                for e in &items {
                    line(&e.to_string());
                    cursor = e["seq"].as_u64().unwrap_or(cursor);
                    printed += 1;
                    if count.is_some_and(|n| printed >= n) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                if items.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
        Command::Bench(args) => {
            crate::bench::run(&c, fmt, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Federation(cmd) => match cmd {
            FederationCmd::Put { name, issuer, audiences, jwks_file, jwks_uri, rules, max_ttl } => {
                let mut body = json!({"issuer": issuer, "audiences": audiences, "max_ttl": max_ttl, "rules": parse_rules(&rules)?});
                if let Some(f) = jwks_file {
                    let text = read_text(&f)?;
                    body["jwks"] = serde_json::from_str::<Value>(&text).with_context(|| format!("{} is not JSON", f.display()))?;
                }
                if let Some(u) = jwks_uri {
                    body["jwks_uri"] = u.into();
                }
                obj(c.call(Method::Put, &format!("/v1/federation/issuers/{}", seg(&name)), Some(&body)).await?)
            }
            FederationCmd::List => {
                let v = c.call(Method::Get, "/v1/federation/issuers", None).await?;
                output::list(fmt, &v, &["name", "issuer", "audiences", "jwks_uri", "max_ttl"]);
                Ok(ExitCode::SUCCESS)
            }
            FederationCmd::Delete { name } => {
                c.call(Method::Delete, &format!("/v1/federation/issuers/{}", seg(&name)), None).await?;
                line(&format!("deleted issuer {name}"));
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Login { jwt_file, issuer, ttl, aws } => {
            let jwt = read_text(&jwt_file)?;
            let mut body = json!({"token": jwt.trim()});
            if aws {
                body["credential"] = "aws".into();
            }
            if let Some(i) = issuer {
                body["issuer"] = i.into();
            }
            if let Some(t) = ttl {
                body["ttl"] = t.into();
            }
            let v = c.call(Method::Post, "/v1/auth/exchange", Some(&body)).await?;
            if fmt == Format::Json {
                output::object(fmt, &v);
            } else if aws {
                let f = |k: &str| v[k].as_str().unwrap_or("").to_string();
                line(&format!(
                    "export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_SESSION_TOKEN={}",
                    f("access_key_id"),
                    f("secret_access_key"),
                    f("session_token")
                ));
            } else {
                line(v["token"].as_str().unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Principal(cmd) => match cmd {
            PrincipalCmd::Create { name, kind, roles, labels, description, rate_limits, tls_certs } => obj(
                c.call(
                    Method::Post,
                    "/v1/principals",
                    Some(&json!({"name": name, "kind": kind, "roles": roles, "labels": pairs(&labels.labels, "--label")?, "description": description, "rate_limits": rates(&rate_limits)?, "tls_certs": fingerprints(&tls_certs)?})),
                )
                .await?,
            ),
            PrincipalCmd::Get { name } => obj(c.call(Method::Get, &format!("/v1/principals/{}", seg(&name)), None).await?),
            PrincipalCmd::List(p) => {
                let v = c.call(Method::Get, &with_query("/v1/principals".into(), &paging_query(&p)), None).await?;
                output::list(fmt, &v, &["name", "kind", "roles", "labels", "disabled"]);
                Ok(ExitCode::SUCCESS)
            }
            PrincipalCmd::Update { name, roles, clear_roles, labels, description, disable, enable, rate_limits, tls_certs, clear_tls_certs } => {
                let mut m = Map::new();
                if !tls_certs.is_empty() || clear_tls_certs {
                    m.insert("tls_certs".into(), fingerprints(&tls_certs)?);
                }
                if !rate_limits.is_empty() {
                    m.insert("rate_limits".into(), rates(&rate_limits)?);
                }
                if !roles.is_empty() || clear_roles {
                    m.insert("roles".into(), json!(roles));
                }
                if !labels.is_empty() {
                    m.insert("labels".into(), Value::Object(pairs(&labels, "--label")?));
                }
                if let Some(d) = description {
                    m.insert("description".into(), d.into());
                }
                if disable || enable {
                    m.insert("disabled".into(), disable.into());
                }
                if m.is_empty() {
                    bail!("nothing to update; see `strongroom principal update --help`");
                }
                obj(c.call(Method::Patch, &format!("/v1/principals/{}", seg(&name)), Some(&Value::Object(m))).await?)
            }
            PrincipalCmd::AccessKey(cmd) => match cmd {
                AccessKeyCmd::Create { principal, description } => obj(
                    c.call(Method::Post, &format!("/v1/principals/{}/access-keys", seg(&principal)), Some(&json!({"description": description})))
                        .await?,
                ),
                AccessKeyCmd::List { principal } => {
                    let v = c.call(Method::Get, &format!("/v1/principals/{}/access-keys", seg(&principal)), None).await?;
                    output::list(fmt, &v, &["access_key_id", "description", "created_at", "revoked_at"]);
                    Ok(ExitCode::SUCCESS)
                }
                AccessKeyCmd::Revoke { id } => obj(c.call(Method::Delete, &format!("/v1/access-keys/{}", seg(&id)), None).await?),
            },
            PrincipalCmd::Token { name, ttl, description } => {
                obj(c.call(Method::Post, &format!("/v1/principals/{}/tokens", seg(&name)), Some(&json!({"ttl": ttl, "description": description}))).await?)
            }
        },
        Command::Policy(cmd) => match cmd {
            PolicyCmd::Put { name, file, version } => {
                let text = read_text(&file)?;
                let mut body = json!({"text": text});
                if let Some(v) = version {
                    body["version"] = v.into();
                }
                let v = c.call(Method::Put, &format!("/v1/policies/{}", seg(&name)), Some(&body)).await?;
                if fmt == Format::Json {
                    output::object(fmt, &v);
                } else {
                    line(&format!("policy {} is now version {}", v["name"].as_str().unwrap_or(&name), v["version"]));
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCmd::Get { name } => {
                let v = c.call(Method::Get, &format!("/v1/policies/{}", seg(&name)), None).await?;
                if fmt == Format::Json {
                    output::object(fmt, &v);
                } else {
                    line(&format!("// {} version {} by {} at {}", v["name"].as_str().unwrap_or(""), v["version"], v["created_by"].as_str().unwrap_or(""), v["created_at"].as_str().unwrap_or("")));
                    print_raw(v["text"].as_str().unwrap_or(""));
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCmd::List => {
                let v = c.call(Method::Get, "/v1/policies", None).await?;
                output::list(fmt, &v, &["name", "version", "created_by", "created_at"]);
                Ok(ExitCode::SUCCESS)
            }
            PolicyCmd::History { name } => {
                let v = c.call(Method::Get, &format!("/v1/policies/{}?history=true", seg(&name)), None).await?;
                output::list(fmt, &v, &["version", "deleted", "created_by", "created_at"]);
                Ok(ExitCode::SUCCESS)
            }
            PolicyCmd::Delete { name, version } => {
                c.call(Method::Delete, &format!("/v1/policies/{}?version={version}", seg(&name)), None).await?;
                line(&format!("deleted policy {name}"));
                Ok(ExitCode::SUCCESS)
            }
            PolicyCmd::Validate { file } => {
                let text = read_text(&file)?;
                let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty() && s != "-").unwrap_or_else(|| "policy".into());
                let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
                c.call(Method::Post, "/v1/policy/validate", Some(&json!({"name": safe, "text": text}))).await?;
                line("valid");
                Ok(ExitCode::SUCCESS)
            }
            PolicyCmd::Test { principal, action, key, key_ring, context, source_ip } => {
                let mut body = json!({"principal": principal, "action": action, "context": pairs(&context.pairs, "--context")?});
                if let Some(k) = key {
                    body["key"] = k.into();
                }
                if let Some(r) = key_ring {
                    body["key_ring"] = r.into();
                }
                if let Some(ip) = source_ip {
                    body["source_ip"] = ip.into();
                }
                let v = c.call(Method::Post, "/v1/policy/test", Some(&body)).await?;
                let allowed = v["allowed"].as_bool().unwrap_or(false);
                if fmt == Format::Json {
                    output::object(fmt, &v);
                } else {
                    let by: Vec<&str> = v["policies"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                    let why = if by.is_empty() { if allowed { String::new() } else { " (no policy permits it: default deny)".into() } } else { format!(" by {}", by.join(", ")) };
                    line(&format!("{}{why}", if allowed { "ALLOW" } else { "DENY" }));
                }
                Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::from(2) })
            }
            PolicyCmd::Schema => {
                print_raw(strongroom_core::POLICY_SCHEMA);
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Keyring(cmd) => match cmd {
            KeyringCmd::Create { name, description, labels } => {
                let body = json!({"name": name, "description": description, "labels": pairs(&labels.labels, "--label")?});
                obj(c.call(Method::Post, "/v1/keyrings", Some(&body)).await?)
            }
            KeyringCmd::Get { name } => obj(c.call(Method::Get, &format!("/v1/keyrings/{}", seg(&name)), None).await?),
            KeyringCmd::List(p) => {
                let v = c.call(Method::Get, &with_query("/v1/keyrings".into(), &paging_query(&p)), None).await?;
                output::list(fmt, &v, &["name", "description", "labels", "created_at"]);
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Key(cmd) => match cmd {
            KeyCmd::Create { key, purpose, algorithm, description, labels, rotation_period, next_rotation_time, exportable, provider, provider_key, hsm } => {
                let (ring, name) = key.split_once('/').with_context(|| format!("expected <key ring>/<key>, got {key:?}"))?;
                let mut body = json!({"name": name, "description": description, "labels": pairs(&labels.labels, "--label")?, "exportable": exportable});
                let m = body.as_object_mut().context("json object")?;
                if let Some(p) = purpose {
                    m.insert("purpose".into(), p.into());
                }
                if let Some(a) = algorithm {
                    m.insert("algorithm".into(), a.into());
                }
                if let Some(r) = rotation_period {
                    m.insert("rotation_period".into(), r.into());
                }
                if let (Some(p), Some(k)) = (provider, provider_key) {
                    m.insert("protection".into(), "external".into());
                    m.insert("provider".into(), p.into());
                    m.insert("provider_key".into(), k.into());
                }
                if let Some(p) = hsm {
                    m.insert("protection".into(), "hsm".into());
                    m.insert("provider".into(), p.into());
                }
                if let Some(t) = next_rotation_time {
                    m.insert("next_rotation_time".into(), t.into());
                }
                obj(c.call(Method::Post, &format!("/v1/keyrings/{}/keys", seg(ring)), Some(&body)).await?)
            }
            KeyCmd::Get { key } => {
                if key.starts_with("alias/") || !key.contains('/') {
                    // Resolve an alias or id to the key's path first.
                    let path = resolve_path(&c, &key).await?;
                    return obj(c.call(Method::Get, &key_path(&path)?, None).await?);
                }
                obj(c.call(Method::Get, &key_path(&key)?, None).await?)
            }
            KeyCmd::List { ring, labels, state, purpose, paging } => {
                let mut q = vec![paging_query(&paging)];
                if !labels.is_empty() {
                    let l: Vec<String> = pairs(&labels, "--label")?.iter().map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or(""))).collect();
                    q.push(format!("labels={}", seg(&l.join(","))));
                }
                if let Some(s) = state {
                    q.push(format!("state={}", seg(&s)));
                }
                if let Some(p) = purpose {
                    q.push(format!("purpose={}", seg(&p)));
                }
                let q: Vec<String> = q.into_iter().filter(|s| !s.is_empty()).collect();
                let v = c.call(Method::Get, &with_query(format!("/v1/keyrings/{}/keys", seg(&ring)), &q.join("&")), None).await?;
                output::list(fmt, &v, KEY_COLUMNS);
                Ok(ExitCode::SUCCESS)
            }
            KeyCmd::Update { key, description, labels, clear_labels, rotation_period, no_rotation, next_rotation_time, not_exportable } => {
                let mut m = Map::new();
                if let Some(d) = description {
                    m.insert("description".into(), d.into());
                }
                if !labels.is_empty() || clear_labels {
                    m.insert("labels".into(), Value::Object(pairs(&labels, "--label")?));
                }
                if let Some(r) = rotation_period {
                    m.insert("rotation_period".into(), r.into());
                }
                if no_rotation {
                    m.insert("rotation_period".into(), Value::Null);
                }
                if let Some(t) = next_rotation_time {
                    m.insert("next_rotation_time".into(), t.into());
                }
                if not_exportable {
                    m.insert("exportable".into(), false.into());
                }
                if m.is_empty() {
                    bail!("nothing to update; see `strongroom key update --help`");
                }
                obj(c.call(Method::Patch, &key_path(&key)?, Some(&Value::Object(m))).await?)
            }
            KeyCmd::Enable { key, at_provider } => {
                let body = at_provider.then(|| json!({"at_provider": true}));
                obj(c.call(Method::Post, &format!("{}/enable", key_path(&key)?), body.as_ref()).await?)
            }
            KeyCmd::Disable { key, at_provider } => {
                let body = at_provider.then(|| json!({"at_provider": true}));
                obj(c.call(Method::Post, &format!("{}/disable", key_path(&key)?), body.as_ref()).await?)
            }
            KeyCmd::ProviderView { key } => obj(c.call(Method::Get, &format!("{}/provider", key_path(&key)?), None).await?),
            KeyCmd::Delete { key, window } => {
                obj(c.call(Method::Post, &format!("{}/schedule-deletion", key_path(&key)?), Some(&json!({"window": window}))).await?)
            }
            KeyCmd::CancelDeletion { key } => obj(c.call(Method::Post, &format!("{}/cancel-deletion", key_path(&key)?), None).await?),
            KeyCmd::SetPrimary { key, version } => {
                obj(c.call(Method::Post, &format!("{}/primary", key_path(&key)?), Some(&json!({"version": version}))).await?)
            }
            KeyCmd::PublicKey { key, version, der_out } => {
                let q = version.map(|v| format!("version={v}")).unwrap_or_default();
                let v = c.call(Method::Get, &with_query(format!("{}/public-key", key_path(&key)?), &q), None).await?;
                if let Some(f) = der_out {
                    let der = c.bytes_field(&v, "der")?;
                    std::fs::write(&f, der).with_context(|| format!("cannot write {}", f.display()))?;
                    line(&format!("wrote {} (DER, version {})", f.display(), v["version"]));
                } else if fmt == Format::Json {
                    output::object(fmt, &v);
                } else {
                    print_raw(v["pem"].as_str().unwrap_or(""));
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Version(cmd) => match cmd {
            VersionCmd::List { key, paging } => {
                let v = c.call(Method::Get, &with_query(format!("{}/versions", key_path(&key)?), &paging_query(&paging)), None).await?;
                output::list(fmt, &v, VERSION_COLUMNS);
                Ok(ExitCode::SUCCESS)
            }
            VersionCmd::Get { key, version } => obj(c.call(Method::Get, &format!("{}/versions/{version}", key_path(&key)?), None).await?),
            VersionCmd::Create { key, no_primary } => {
                obj(c.call(Method::Post, &format!("{}/versions", key_path(&key)?), Some(&json!({"make_primary": !no_primary}))).await?)
            }
            VersionCmd::Enable { key, version } => obj(c.call(Method::Post, &format!("{}/versions/{version}/enable", key_path(&key)?), None).await?),
            VersionCmd::Disable { key, version } => obj(c.call(Method::Post, &format!("{}/versions/{version}/disable", key_path(&key)?), None).await?),
            VersionCmd::Destroy { key, version, window } => obj(
                c.call(Method::Post, &format!("{}/versions/{version}/destroy", key_path(&key)?), Some(&json!({"window": window})))
                    .await?,
            ),
            VersionCmd::Restore { key, version } => obj(c.call(Method::Post, &format!("{}/versions/{version}/restore", key_path(&key)?), None).await?),
        },
        Command::Alias(cmd) => match cmd {
            AliasCmd::Create { name, key } => obj(c.call(Method::Post, "/v1/aliases", Some(&json!({"name": name, "key": key}))).await?),
            AliasCmd::Update { name, key } => obj(c.call(Method::Put, &format!("/v1/aliases/{}", seg(alias_bare(&name))), Some(&json!({"key": key}))).await?),
            AliasCmd::Delete { name } => {
                c.call(Method::Delete, &format!("/v1/aliases/{}", seg(alias_bare(&name))), None).await?;
                line(&format!("deleted alias {}", alias_bare(&name)));
                Ok(ExitCode::SUCCESS)
            }
            AliasCmd::Get { name } => obj(c.call(Method::Get, &format!("/v1/aliases/{}", seg(alias_bare(&name))), None).await?),
            AliasCmd::List { key, paging } => {
                let mut q = vec![paging_query(&paging)];
                if let Some(k) = key {
                    q.push(format!("key={}", seg(&k)));
                }
                let q: Vec<String> = q.into_iter().filter(|s| !s.is_empty()).collect();
                let v = c.call(Method::Get, &with_query("/v1/aliases".into(), &q.join("&")), None).await?;
                output::list(fmt, &v, &["name", "key", "updated_at"]);
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Encrypt(a) => {
            let pt = read_input(&a.input)?;
            let v = c
                .call(Method::Post, "/v1/crypto/encrypt", Some(&json!({"key": a.key, "plaintext": B64.encode(&pt), "context": pairs(&a.context.pairs, "--context")?})))
                .await?;
            let ct = c.bytes_field(&v, "ciphertext")?;
            write_bytes(&a.out, &ct, fmt, &v, "ciphertext")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Decrypt(a) => {
            let ct = read_input(&a.input)?;
            let mut body = json!({"ciphertext": B64.encode(&ct), "context": pairs(&a.context.pairs, "--context")?});
            if let (Some(k), Some(m)) = (a.key, body.as_object_mut()) {
                m.insert("key".into(), k.into());
            }
            let v = c.call(Method::Post, "/v1/crypto/decrypt", Some(&body)).await?;
            let pt = c.bytes_field(&v, "plaintext")?;
            write_bytes(&a.out, &pt, fmt, &v, "plaintext")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DataKey(a) => obj(
            c.call(
                Method::Post,
                "/v1/crypto/generate-data-key",
                Some(&json!({"key": a.key, "length": a.length, "context": pairs(&a.context.pairs, "--context")?, "include_plaintext": !a.no_plaintext})),
            )
            .await?,
        ),
        Command::ReEncrypt(a) => {
            let ct = read_input(&a.input)?;
            let mut body = json!({
                "ciphertext": B64.encode(&ct),
                "source_context": pairs(&a.source_context, "--source-context")?,
                "destination_context": pairs(&a.destination_context, "--destination-context")?,
            });
            if let (Some(k), Some(m)) = (a.destination_key, body.as_object_mut()) {
                m.insert("destination_key".into(), k.into());
            }
            let v = c.call(Method::Post, "/v1/crypto/re-encrypt", Some(&body)).await?;
            let out = c.bytes_field(&v, "ciphertext")?;
            write_bytes(&a.out, &out, fmt, &v, "ciphertext")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AsymmetricDecrypt(a) => {
            let ct = read_input(&a.input)?;
            let v = c.call(Method::Post, "/v1/crypto/asymmetric-decrypt", Some(&json!({"key": a.key, "version": a.version, "ciphertext": B64.encode(&ct)}))).await?;
            let pt = c.bytes_field(&v, "plaintext")?;
            write_bytes(&a.out, &pt, fmt, &v, "plaintext")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign(a) => {
            let data = read_input(&a.input)?;
            let field = if a.digest { "digest" } else { "message" };
            let mut body = json!({"key": a.key, "version": a.version});
            body[field] = B64.encode(&data).into();
            let v = c.call(Method::Post, "/v1/crypto/sign", Some(&body)).await?;
            let sig = c.bytes_field(&v, "signature")?;
            write_bytes(&a.out, &sig, fmt, &v, "signature")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(a) => {
            let data = read_input(&a.input)?;
            let sig = match (&a.signature, &a.signature_file) {
                (Some(s), _) => s.trim().to_string(),
                (None, Some(f)) => B64.encode(std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?),
                (None, None) => bail!("give --signature or --signature-file"),
            };
            let field = if a.digest { "digest" } else { "message" };
            let mut body = json!({"key": a.key, "version": a.version, "signature": sig});
            body[field] = B64.encode(&data).into();
            let v = c.call(Method::Post, "/v1/crypto/verify", Some(&body)).await?;
            verdict(fmt, &v)
        }
        Command::Mac(cmd) => match cmd {
            MacCmd::Generate { key, version, input, out } => {
                let data = read_input(&input)?;
                let v = c.call(Method::Post, "/v1/crypto/mac", Some(&json!({"key": key, "version": version, "message": B64.encode(&data)}))).await?;
                let mac = c.bytes_field(&v, "mac")?;
                write_bytes(&out, &mac, fmt, &v, "mac")?;
                Ok(ExitCode::SUCCESS)
            }
            MacCmd::Verify { key, version, input, mac } => {
                let data = read_input(&input)?;
                let v = c
                    .call(Method::Post, "/v1/crypto/mac-verify", Some(&json!({"key": key, "version": version, "message": B64.encode(&data), "mac": mac.trim()})))
                    .await?;
                verdict(fmt, &v)
            }
        },
        Command::Random(a) => {
            let v = c.call(Method::Post, "/v1/crypto/random", Some(&json!({"length": a.length}))).await?;
            let r = c.bytes_field(&v, "random")?;
            write_bytes(&a.out, &r, fmt, &v, "random")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(cmd) => match cmd {
            TokenCmd::Create { ttl, description } => obj(c.call(Method::Post, "/v1/tokens", Some(&json!({"ttl": ttl, "description": description}))).await?),
            TokenCmd::Lookup => obj(c.call(Method::Get, "/v1/tokens/self", None).await?),
            TokenCmd::List(p) => {
                let v = c.call(Method::Get, &with_query("/v1/tokens".into(), &paging_query(&p)), None).await?;
                output::list(fmt, &v, &["id", "principal", "description", "expires_at", "revoked_at"]);
                Ok(ExitCode::SUCCESS)
            }
            TokenCmd::Revoke { id } => obj(c.call(Method::Delete, &format!("/v1/tokens/{}", seg(&id)), None).await?),
        },
    }
}

fn alias_bare(name: &str) -> &str {
    name.strip_prefix("alias/").unwrap_or(name)
}

/// An alias or key id → `ring/key`, via the alias endpoint (ids: via a decrypt-free lookup
/// is not offered by the API, so ids must be given as paths for management commands).
async fn resolve_path(c: &Client, key: &str) -> anyhow::Result<String> {
    if let Some(a) = key.strip_prefix("alias/") {
        let v = c
            .call(Method::Get, &format!("/v1/aliases/{}", seg(a)), None)
            .await?;
        return v["key"]
            .as_str()
            .map(str::to_string)
            .context("alias response without key");
    }
    bail!("management commands take <key ring>/<key> or alias/<alias>, got {key:?}")
}

fn verdict(fmt: Format, v: &Value) -> anyhow::Result<ExitCode> {
    let valid = v["valid"].as_bool().unwrap_or(false);
    if fmt == Format::Json {
        output::object(fmt, v);
    } else {
        line(if valid { "valid" } else { "INVALID" });
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

#[allow(clippy::print_stdout)]
fn print_raw(s: &str) {
    print!("{s}");
}

async fn operator_backup(
    c: &Client,
    fmt: Format,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let to_stdout = out == std::path::Path::new("-");
    if !to_stdout && out.exists() {
        bail!(
            "{} exists; choose a new file (backups are never overwritten)",
            out.display()
        );
    }
    let bytes = c
        .call_bytes(
            Method::Post,
            "/v1/sys/backup",
            std::time::Duration::from_secs(3600),
        )
        .await?;
    let header = strongroom_core::backup::peek_header(&bytes)
        .map_err(|e| anyhow::anyhow!("the server's answer is not a backup: {e}"))?;
    if to_stdout {
        let mut o = std::io::stdout().lock();
        o.write_all(&bytes)
            .context("cannot write the backup to stdout")?;
        o.flush().context("cannot write the backup to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::newfile::write(out, &bytes)?;
    let mut summary = serde_json::to_value(&header)?;
    summary["file"] = out.display().to_string().into();
    summary["bytes"] = bytes.len().into();
    output::object(fmt, &summary);
    Ok(ExitCode::SUCCESS)
}

async fn operator_restore(
    fmt: Format,
    from: PathBuf,
    root_key_file: PathBuf,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (target, start) = match (&database_url, &data_dir) {
        (Some(_), _) => (
            "the PostgreSQL database".to_string(),
            format!(
                "strongroom serve --database-url … --root-key-file {} (each node with its own --data-dir)",
                root_key_file.display()
            ),
        ),
        (None, Some(d)) => (
            format!("data dir {}", d.display()),
            format!(
                "strongroom serve --data-dir {} --root-key-file {}",
                d.display(),
                root_key_file.display()
            ),
        ),
        (None, None) => bail!("give --data-dir or --database-url"),
    };
    let restored =
        strongroom_core::bootstrap::restore(strongroom_core::bootstrap::RestoreOptions {
            backup: from.clone(),
            root_key_file: root_key_file.clone(),
            data_dir: data_dir.clone().unwrap_or_default(),
            database: database_url.map(|url| strongroom_core::PostgresOptions {
                url,
                max_connections: 2,
            }),
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let h = &restored.header;
    match fmt {
        Format::Json => {
            let counts: Map<String, Value> = restored
                .counts
                .iter()
                .map(|(t, n)| (t.clone(), (*n).into()))
                .collect();
            output::object(
                fmt,
                &json!({"restored": target, "from": from.display().to_string(), "header": h, "rows": counts}),
            );
        }
        Format::Table => {
            line(&format!(
                "restored {} into {target}: the backup of {} (strongroom {}, schema {}), taken at audit sequence {} of node {}",
                from.display(),
                h.created_at,
                h.strongroom_version,
                h.schema_version,
                h.audit.seq,
                h.audit.node
            ));
            line(&format!("start it with: {start}"));
            line(
                "Keep the original audit log(s) with the backup: the restored instance starts a new one.",
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_merge(files: &[PathBuf], out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    if let Some(o) = out
        && o.exists()
    {
        bail!("{} exists; choose a new file", o.display());
    }
    let mut logs = Vec::new();
    let mut damaged = Vec::new();
    for file in files {
        let log = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let pk_path = file.with_file_name("audit-signing.pub");
        let pem = std::fs::read_to_string(&pk_path).with_context(|| {
            format!(
                "cannot read the audit signing public key {}",
                pk_path.display()
            )
        })?;
        let der = pem_to_der(&pem)
            .with_context(|| format!("{} is not a PEM public key", pk_path.display()))?;
        let r = strongroom_audit::verify::verify(&log, Some(&der), None);
        if !r.is_intact() {
            damaged.push(format!(
                "{}: {}",
                file.display(),
                r.findings
                    .iter()
                    .map(|f| format!("line {}: {}", f.line, f.kind.as_str()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            continue;
        }
        let node = std::fs::read_to_string(file.with_file_name("node.id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                file.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| file.display().to_string());
        logs.push((node, log));
    }
    if !damaged.is_empty() {
        output::error_line(&format!(
            "not merged: {} (run `strongroom audit verify` on each for details)",
            damaged.join(" | ")
        ));
        return Ok(ExitCode::from(3));
    }
    let mut text = String::new();
    for e in strongroom_audit::merge::merge(&logs) {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    match out {
        Some(o) => crate::newfile::write(o, text.as_bytes())?,
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())
                .context("cannot write to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(
    fmt: Format,
    file: &std::path::Path,
    public_key: Option<PathBuf>,
    expect: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let log = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let pk_path = public_key.unwrap_or_else(|| file.with_file_name("audit-signing.pub"));
    let pem = std::fs::read_to_string(&pk_path).with_context(|| {
        format!(
            "cannot read the audit signing public key {} (give it with --public-key)",
            pk_path.display()
        )
    })?;
    let der = pem_to_der(&pem)
        .with_context(|| format!("{} is not a PEM public key", pk_path.display()))?;
    let r = strongroom_audit::verify::verify(&log, Some(&der), expect);
    let findings: Vec<Value> = r
        .findings
        .iter()
        .map(|f| json!({"line": f.line, "seq": f.seq, "finding": f.kind.as_str(), "detail": f.detail}))
        .collect();
    let summary = json!({
        "file": file.display().to_string(),
        "intact": r.is_intact(),
        "lines": r.lines,
        "events": r.events,
        "checkpoints": r.checkpoints,
        "last_checkpoint_seq": r.last_checkpoint_seq,
        "unsigned_tail": r.unsigned_tail,
        "findings": findings,
    });
    if fmt == Format::Json {
        output::object(fmt, &summary);
    } else {
        line(&format!(
            "{}: {} events, {} checkpoints (last at seq {}), {} lines after the last checkpoint",
            file.display(),
            r.events,
            r.checkpoints,
            r.last_checkpoint_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.unsigned_tail
        ));
        for f in &r.findings {
            let seq = f.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
            line(&format!(
                "line {}{seq}: {}: {}",
                f.line,
                f.kind.as_str(),
                f.detail
            ));
        }
        line(if r.is_intact() {
            "intact"
        } else {
            "TAMPERED OR DAMAGED"
        });
    }
    Ok(if r.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The sequence number of the newest event (so `tail` starts at "now").
async fn latest_seq(c: &Client) -> anyhow::Result<u64> {
    let mut cursor = 0u64;
    loop {
        let v = c
            .call(
                Method::Get,
                &format!("/v1/audit/events?limit=1000&after_seq={cursor}"),
                None,
            )
            .await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if let Some(last) = items.last().and_then(|e| e["seq"].as_u64()) {
            cursor = last;
        }
        if v["next_after_seq"].is_null() {
            return Ok(cursor);
        }
    }
}

fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(B64.decode(body.trim())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
