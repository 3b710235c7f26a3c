//! What the HTTP providers share: the client, transport errors in the provider's terms,
//! form bodies, and a cache for OAuth access tokens (Google, Azure).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ProviderError, Result};

/// An HTTP client whose every request ends within `timeout`.
pub(crate) fn client(name: &str, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| ProviderError::Config(format!("providers.{name}: HTTP client: {e}")))
}

/// A request that got no answer: always worth retrying (timeouts, refused connections).
pub(crate) fn transport_error(provider: &str, e: &reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    ProviderError::unavailable(provider, what, true)
}

/// A call with an OAuth access token (`token` fetches one, from `cache` when it can): when
/// the answer is 401 the cached token is dropped and the call made once more with a fresh one.
pub(crate) async fn with_token<T, C>(
    cache: &TokenCache,
    token: impl Fn() -> T,
    call: impl Fn(String) -> C,
) -> Result<Answer>
where
    T: std::future::Future<Output = Result<String>>,
    C: std::future::Future<Output = Result<Answer>>,
{
    let a = call(token().await?).await?;
    if a.status != 401 {
        return Ok(a);
    }
    cache.clear();
    call(token().await?).await
}

/// An answer: status, the request id header named, and the JSON body (`Null` if none).
pub(crate) struct Answer {
    pub(crate) status: u16,
    #[cfg_attr(not(feature = "azure-keyvault"), allow(dead_code))]
    pub(crate) request_id: Option<String>,
    pub(crate) json: Value,
}

/// Sends `req`; `request_id_header` names the header carrying the provider's request id.
pub(crate) async fn send(
    provider: &str,
    req: reqwest::RequestBuilder,
    request_id_header: Option<&str>,
) -> Result<Answer> {
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(provider, &e))?;
    let status = resp.status().as_u16();
    let request_id = request_id_header
        .and_then(|h| resp.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect());
    let json = resp.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        request_id,
        json,
    })
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The provider's own words for an error (`error.message`, at most 200 characters).
pub(crate) fn message(v: &Value) -> String {
    let m = v["error"]["message"]
        .as_str()
        .or_else(|| v["error_description"].as_str())
        .or_else(|| v["error"].as_str())
        .unwrap_or("");
    m.chars().take(200).collect()
}

/// An access token and when to stop using it.
#[derive(Default)]
pub(crate) struct TokenCache(Mutex<Option<(String, Instant)>>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache([REDACTED])")
    }
}

impl TokenCache {
    /// The cached token while it has more than a minute left.
    pub(crate) fn get(&self) -> Option<String> {
        let g = self.0.lock().ok()?;
        g.as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    /// Keeps `token`, valid for `expires_in` seconds (used until a minute before).
    pub(crate) fn put(&self, token: &str, expires_in: u64) {
        let life = Duration::from_secs(expires_in.saturating_sub(60).max(1));
        if let Ok(mut g) = self.0.lock() {
            *g = Some((token.to_string(), Instant::now() + life));
        }
    }

    /// Forgets the token (the provider refused it).
    pub(crate) fn clear(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }
}

/// The `access_token` and `expires_in` of an OAuth token answer.
pub(crate) fn token_of(provider: &str, a: &Answer) -> Result<(String, u64)> {
    let token = a.json["access_token"].as_str().filter(|_| a.status == 200);
    match token {
        Some(t) if !t.is_empty() => Ok((
            t.to_string(),
            a.json["expires_in"]
                .as_u64()
                .or_else(|| a.json["expires_in"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(300),
        )),
        _ => Err(match a.status {
            429 | 500..=599 => ProviderError::Unavailable {
                provider: provider.to_string(),
                detail: format!("token endpoint: HTTP {}", a.status),
                retryable: true,
            },
            s => ProviderError::AccessDenied {
                provider: provider.to_string(),
                detail: format!("token refused (HTTP {s}): {}", message(&a.json)),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form(&[("a", "b c"), ("scope", "https://x/.default"), ("k", "é&=")]),
            "a=b+c&scope=https%3A%2F%2Fx%2F.default&k=%C3%A9%26%3D"
        );
    }
}
