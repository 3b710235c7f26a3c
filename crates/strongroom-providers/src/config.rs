//! The providers' configuration file: `[providers.<name>] kind = "…"` tables (TOML).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{FailoverPolicy, KeyProvider, ProviderError, Result};

/// The providers of a configuration file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[providers.<name>]` tables.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Each provider's failover settings (the keys of [`crate::failover::KEYS`] in its table).
    #[serde(skip)]
    pub failover: BTreeMap<String, FailoverPolicy>,
    /// `[key_sets]`: this node's defaults for key sets.
    #[serde(default)]
    pub key_sets: KeySetDefaults,
}

/// `[key_sets]` of a providers file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetDefaults {
    /// Providers to try first when decrypting, nearest first (a request's own `prefer`
    /// replaces it). Each must be a provider of this file or `software`.
    #[serde(default)]
    pub prefer: Vec<String>,
}

/// One `[providers.<name>]` table, by its `kind`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProviderConfig {
    /// HashiCorp Vault or OpenBao Transit.
    #[cfg(feature = "vault-transit")]
    VaultTransit(crate::vault_transit::VaultTransitConfig),
    /// AWS KMS.
    #[cfg(feature = "aws-kms")]
    AwsKms(crate::aws_kms::AwsKmsConfig),
    /// A PKCS#11 token (an HSM).
    #[cfg(feature = "pkcs11")]
    Pkcs11(crate::pkcs11::Pkcs11Config),
    /// Google Cloud KMS.
    #[cfg(feature = "gcp-kms")]
    GcpKms(crate::gcp_kms::GcpKmsConfig),
    /// Azure Key Vault or Managed HSM.
    #[cfg(feature = "azure-keyvault")]
    AzureKeyvault(crate::azure_keyvault::AzureKeyVaultConfig),
}

impl Config {
    /// Parses the TOML text of a configuration file. Errors name the table and field.
    pub fn parse(text: &str) -> Result<Self> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ProviderError::Config(e.to_string()))?;
        let mut failover = BTreeMap::new();
        if let Some(toml::Value::Table(ps)) = doc.get_mut("providers") {
            for (name, p) in ps.iter_mut() {
                if let toml::Value::Table(t) = p {
                    failover.insert(name.clone(), FailoverPolicy::take_from(name, t)?);
                }
            }
        }
        let mut c: Self = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ProviderError::Config(e.to_string()))?;
        c.failover = failover;
        for p in &c.key_sets.prefer {
            if p != crate::SOFTWARE && !c.providers.contains_key(p) {
                return Err(ProviderError::Config(format!(
                    "key_sets.prefer: {p:?} is not a provider of this file"
                )));
            }
        }
        for name in c.providers.keys() {
            if name == crate::SOFTWARE {
                return Err(ProviderError::Config(format!(
                    "provider name {name:?} is reserved for Strongroom's own keys"
                )));
            }
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(ProviderError::Config(format!(
                    "provider name {name:?}: use 1-64 of a-z 0-9 - _"
                )));
            }
        }
        Ok(c)
    }

    /// Builds every provider (reading credentials from where the configuration says).
    pub fn build(&self) -> Result<BTreeMap<String, Arc<dyn KeyProvider>>> {
        let mut out = BTreeMap::new();
        for (name, p) in &self.providers {
            let provider: Arc<dyn KeyProvider> = match p {
                #[cfg(feature = "vault-transit")]
                ProviderConfig::VaultTransit(c) => {
                    Arc::new(crate::vault_transit::VaultTransit::new(name, c)?)
                }
                #[cfg(feature = "aws-kms")]
                ProviderConfig::AwsKms(c) => Arc::new(crate::aws_kms::AwsKms::new(name, c)?),
                #[cfg(feature = "pkcs11")]
                ProviderConfig::Pkcs11(c) => Arc::new(crate::pkcs11::Pkcs11Provider::new(name, c)?),
                #[cfg(feature = "gcp-kms")]
                ProviderConfig::GcpKms(c) => Arc::new(crate::gcp_kms::GcpKms::new(name, c)?),
                #[cfg(feature = "azure-keyvault")]
                ProviderConfig::AzureKeyvault(c) => {
                    Arc::new(crate::azure_keyvault::AzureKeyVault::new(name, c)?)
                }
            };
            out.insert(name.clone(), provider);
        }
        Ok(out)
    }
}
