//! The native REST API under `/v1/`. Each handler converts the request, makes one
//! `KeyService` call, and converts the result: no key logic here. Reference:
//! `docs/openapi.json` and `docs/api.md`.

mod error;
mod extract;
#[cfg(test)]
mod openapi_tests;
pub(crate) mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use strongroom_core::types::*;
use strongroom_core::{
    AliasName, EncryptionContext, KeyName, KeyService, KeyState, Page, PageRequest, PolicyTest,
    PrincipalInput, PrincipalName, PrincipalUpdate, Purpose, RingName, TestResource, Timestamp,
};

pub(crate) use error::{ApiError, Unaudited};
pub(crate) use extract::Ctx;
pub use extract::MAX_BODY;
use extract::{Json, OptionalJson, Path, Query};
use wire::*;

type App = State<Arc<KeyService>>;
type ApiResult<T> = Result<T, ApiError>;

/// The OpenAPI document, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

pub(crate) fn routes() -> Router<Arc<KeyService>> {
    Router::new()
        .route("/v1/sys/health", get(health))
        .route("/v1/sys/ready", get(ready))
        .route("/v1/sys/backup", post(create_backup))
        .route("/v1/providers", get(list_providers))
        .route("/v1/key-sets", post(create_key_set).get(list_key_sets))
        .route(
            "/v1/key-sets/{name}",
            get(get_key_set).put(update_key_set).delete(delete_key_set),
        )
        .route(
            "/v1/key-sets/{name}/generate-data-key",
            post(key_set_generate_data_key),
        )
        .route("/v1/key-sets/{name}/wrap", post(key_set_wrap))
        .route("/v1/key-sets/{name}/decrypt", post(key_set_decrypt))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/keyrings", post(create_key_ring).get(list_key_rings))
        .route("/v1/keyrings/{ring}", get(get_key_ring))
        .route("/v1/keyrings/{ring}/keys", post(create_key).get(list_keys))
        .route(
            "/v1/keyrings/{ring}/keys/{key}",
            get(get_key).patch(update_key),
        )
        .route("/v1/keyrings/{ring}/keys/{key}/enable", post(enable_key))
        .route("/v1/keyrings/{ring}/keys/{key}/disable", post(disable_key))
        .route(
            "/v1/keyrings/{ring}/keys/{key}/provider",
            get(get_provider_view),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/schedule-deletion",
            post(schedule_key_deletion),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/cancel-deletion",
            post(cancel_key_deletion),
        )
        .route("/v1/keyrings/{ring}/keys/{key}/primary", post(set_primary))
        .route("/v1/keyrings/{ring}/keys/{key}/public-key", get(public_key))
        .route(
            "/v1/keyrings/{ring}/keys/{key}/versions",
            post(create_version).get(list_versions),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/versions/{version}",
            get(get_version),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/versions/{version}/enable",
            post(enable_version),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/versions/{version}/disable",
            post(disable_version),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/versions/{version}/destroy",
            post(destroy_version),
        )
        .route(
            "/v1/keyrings/{ring}/keys/{key}/versions/{version}/restore",
            post(restore_version),
        )
        .route("/v1/aliases", post(create_alias).get(list_aliases))
        .route(
            "/v1/aliases/{*name}",
            get(get_alias).put(update_alias).delete(delete_alias),
        )
        .route("/v1/crypto/encrypt", post(encrypt))
        .route("/v1/crypto/decrypt", post(decrypt))
        .route("/v1/crypto/generate-data-key", post(generate_data_key))
        .route("/v1/crypto/re-encrypt", post(re_encrypt))
        .route("/v1/crypto/asymmetric-decrypt", post(asymmetric_decrypt))
        .route("/v1/crypto/sign", post(sign))
        .route("/v1/crypto/verify", post(verify))
        .route("/v1/crypto/mac", post(mac))
        .route("/v1/crypto/mac-verify", post(mac_verify))
        .route(
            "/v1/crypto/derive-shared-secret",
            post(derive_shared_secret),
        )
        .route("/v1/crypto/random", post(random))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/self", get(lookup_self))
        .route("/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route(
            "/v1/principals",
            post(create_principal).get(list_principals),
        )
        .route(
            "/v1/principals/{name}",
            get(get_principal).patch(update_principal),
        )
        .route("/v1/principals/{name}/tokens", post(create_principal_token))
        .route(
            "/v1/principals/{name}/access-keys",
            post(create_access_key).get(list_access_keys),
        )
        .route(
            "/v1/access-keys/{id}",
            axum::routing::delete(revoke_access_key),
        )
        .route("/v1/policies", get(list_policies))
        .route(
            "/v1/policies/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/v1/policy/validate", post(validate_policy))
        .route("/v1/policy/test", post(test_policy))
        .route("/v1/policy/schema", get(policy_schema))
        .route("/v1/audit/events", get(audit_events))
        .route("/v1/federation/issuers", get(list_issuers))
        .route(
            "/v1/federation/issuers/{name}",
            axum::routing::put(put_issuer).delete(delete_issuer),
        )
        .route("/v1/auth/exchange", post(exchange_token))
}

/// Fallback for unknown paths under the API, in the API's error shape.
pub(crate) async fn not_found() -> Response {
    ApiError::http(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
    .into_response()
}

/// Answer for a known path with the wrong method.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint; see /v1/openapi.json",
    )
    .into_response()
}

// ---- conversions ----

fn ring_name(s: &str) -> ApiResult<RingName> {
    RingName::try_new(s).map_err(|e| ApiError::invalid("key_ring", e.to_string()))
}

fn key_path(ring: &str, key: &str) -> ApiResult<KeyRef> {
    Ok(KeyRef::Path(
        ring_name(ring)?,
        KeyName::try_new(key).map_err(|e| ApiError::invalid("key", e.to_string()))?,
    ))
}

fn key_ref(s: &str, field: &str) -> ApiResult<KeyRef> {
    KeyRef::parse(s, field).map_err(ApiError::request)
}

fn alias_name(s: &str) -> ApiResult<AliasName> {
    // `alias/<name>` is how requests refer to aliases as keys; accept it here too.
    let s = s.strip_prefix("alias/").unwrap_or(s);
    AliasName::try_new(s).map_err(|_| ApiError::invalid("name", "alias names are 1 to 250 characters of A-Z a-z 0-9 _ - /, start with a letter or digit, and have no empty segments"))
}

fn version_no(s: &str) -> ApiResult<u32> {
    s.parse::<u32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::invalid("version", "must be a whole number from 1"))
}

fn context(m: StrictMap, field: &str) -> ApiResult<EncryptionContext> {
    EncryptionContext::try_new(m.0).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn timestamp(s: &str, field: &str) -> ApiResult<Timestamp> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| {
        ApiError::invalid(
            field,
            "must be an RFC 3339 time such as 2027-01-31T00:00:00Z",
        )
    })
}

fn duration(s: &str, field: &str) -> ApiResult<i64> {
    parse_duration(s, field).map_err(ApiError::request)
}

fn page(size: Option<u32>, token: Option<String>) -> ApiResult<PageRequest> {
    if let Some(n) = size
        && !(1..=1000).contains(&n)
    {
        return Err(ApiError::invalid("page_size", "must be between 1 and 1000"));
    }
    let after = match token {
        None => None,
        Some(t) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::invalid("page_token", "not a page token from this listing")
                })?;
            Some(raw)
        }
    };
    Ok(PageRequest {
        after,
        limit: size.unwrap_or(100),
    })
}

fn list<T, U>(p: Page<T>, f: impl FnMut(T) -> U) -> ListResponse<U> {
    ListResponse {
        items: p.items.into_iter().map(f).collect(),
        next_page_token: p
            .next
            .map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.as_bytes())),
    }
}

fn created<T: serde::Serialize>(v: T) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn ok<T: serde::Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

// ---- system ----

async fn health(State(svc): App) -> Response {
    let h = svc.health();
    let up = |b: bool| if b { "ok" } else { "failed" };
    let body = HealthResponse {
        status: up(h.store_ok && h.audit_ok),
        store: up(h.store_ok),
        audit: up(h.audit_ok),
        version: env!("CARGO_PKG_VERSION"),
    };
    let status = if h.store_ok && h.audit_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn ready(State(svc): App) -> Response {
    let r = svc.readiness().await;
    let up = |b: bool| if b { "ok" } else { "failed" };
    let body = ReadyResponse {
        status: up(r.ready()),
        store: up(r.store_ok),
        audit: up(r.audit_ok),
        policies: up(r.policies_ok),
        sealed: false,
    };
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn list_providers(State(svc): App, Ctx(ctx): Ctx) -> ApiResult<Response> {
    let items: Vec<ProviderResponse> = svc
        .list_providers(&ctx)
        .await?
        .into_iter()
        .map(|p| ProviderResponse {
            name: p.name,
            kind: p.kind,
            healthy: p.healthy,
            error: p.error,
            probe_ms: p.probe_ms,
            breaker: p.breaker.as_str(),
        })
        .collect();
    Ok(ok(ListResponse {
        items,
        next_page_token: None,
    }))
}

fn key_set_spec(
    members: Vec<String>,
    description: String,
    labels: StrictMap,
    forget_retired: bool,
) -> strongroom_core::keysets::KeySetSpec {
    strongroom_core::keysets::KeySetSpec {
        members,
        description,
        labels: labels.0,
        forget_retired,
    }
}

async fn create_key_set(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<CreateKeySetRequest>,
) -> ApiResult<Response> {
    let CreateKeySetRequest {
        name,
        members,
        description,
        labels,
    } = req;
    let set = svc
        .create_key_set(
            &ctx,
            &name,
            key_set_spec(members, description, labels, false),
        )
        .await?;
    Ok(created(KeySetResponse::from(set)))
}

async fn update_key_set(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<UpdateKeySetRequest>,
) -> ApiResult<Response> {
    let UpdateKeySetRequest {
        members,
        forget_retired,
        description,
        labels,
    } = req;
    let set = svc
        .update_key_set(
            &ctx,
            &name,
            key_set_spec(members, description, labels, forget_retired),
        )
        .await?;
    Ok(ok(KeySetResponse::from(set)))
}

async fn get_key_set(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(KeySetResponse::from(
        svc.get_key_set(&ctx, &name).await?,
    )))
}

async fn list_key_sets(State(svc): App, Ctx(ctx): Ctx) -> ApiResult<Response> {
    let items: Vec<KeySetResponse> = svc
        .list_key_sets(&ctx)
        .await?
        .into_iter()
        .map(KeySetResponse::from)
        .collect();
    Ok(ok(ListResponse {
        items,
        next_page_token: None,
    }))
}

async fn delete_key_set(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    svc.delete_key_set(&ctx, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn key_set_generate_data_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    OptionalJson(req): OptionalJson<KeySetGenerateRequest>,
) -> ApiResult<Response> {
    let KeySetGenerateRequest { length, context: c } = req;
    let out = svc
        .key_set_generate_data_key(
            &ctx,
            &name,
            &context(c, "context")?,
            length.unwrap_or(DEFAULT_DATA_KEY_LEN),
        )
        .await?;
    Ok(ok(KeySetGenerateResponse {
        key_set: out.key_set,
        plaintext: SecretB64(out.plaintext),
        wrapped: member_wrapped(out.wrapped),
    }))
}

fn member_wrapped(ws: Vec<strongroom_core::keysets::MemberWrapped>) -> Vec<MemberWrappedKey> {
    ws.into_iter()
        .map(|w| MemberWrappedKey {
            member: w.member,
            ciphertext: B64Bytes(w.ciphertext),
            key_version: w.key_version,
        })
        .collect()
}

async fn key_set_wrap(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<KeySetWrapRequest>,
) -> ApiResult<Response> {
    let KeySetWrapRequest {
        plaintext,
        context: c,
    } = req;
    let wrapped = svc
        .key_set_wrap(&ctx, &name, &context(c, "context")?, &plaintext.0)
        .await?;
    Ok(ok(KeySetWrapResponse {
        key_set: name,
        wrapped: member_wrapped(wrapped),
    }))
}

async fn key_set_decrypt(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<KeySetDecryptRequest>,
) -> ApiResult<Response> {
    let KeySetDecryptRequest {
        wrapped,
        context: c,
        prefer,
    } = req;
    let input = strongroom_core::keysets::KeySetDecryptInput {
        wrapped: wrapped
            .into_iter()
            .map(|w| (w.member, w.ciphertext.0))
            .collect(),
        context: context(c, "context")?,
        prefer,
    };
    let out = svc.key_set_decrypt(&ctx, &name, input).await?;
    Ok(ok(KeySetDecryptResponse {
        member: out.member,
        plaintext: SecretB64(out.plaintext),
        failed: out
            .failed
            .into_iter()
            .map(|a| FailedMember {
                member: a.member,
                error: a.error,
            })
            .collect(),
    }))
}

async fn create_backup(State(svc): App, Ctx(ctx): Ctx) -> ApiResult<Response> {
    let (header, bytes) = svc.create_backup(&ctx).await?;
    let stamp: String = header
        .created_at
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.strongroom.backup".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"strongroom-{stamp}.srbk\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

// ---- key rings ----

async fn create_key_ring(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<CreateKeyRingRequest>,
) -> ApiResult<Response> {
    let CreateKeyRingRequest {
        name,
        description,
        labels,
    } = req;
    let input = CreateKeyRingInput { name: ring_name(&name).map_err(|_| ApiError::invalid("name", "key ring names are 1 to 63 characters of A-Z a-z 0-9 _ - and start with a letter or digit"))?, description, labels: labels.0 };
    let ring = svc.create_key_ring(&ctx, input).await?;
    Ok(created(KeyRingResponse::from(ring)))
}

async fn get_key_ring(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(ring): Path<String>,
) -> ApiResult<Response> {
    let r = svc.get_key_ring(&ctx, &ring_name(&ring)?).await?;
    Ok(ok(KeyRingResponse::from(r)))
}

async fn list_key_rings(
    State(svc): App,
    Ctx(ctx): Ctx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let PageQuery {
        page_size,
        page_token,
    } = q;
    let p = svc
        .list_key_rings(&ctx, &page(page_size, page_token)?)
        .await?;
    Ok(ok(list(p, KeyRingResponse::from)))
}

// ---- keys ----

async fn create_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(ring): Path<String>,
    Json(req): Json<CreateKeyRequest>,
) -> ApiResult<Response> {
    let CreateKeyRequest {
        name,
        purpose,
        algorithm,
        description,
        labels,
        exportable,
        rotation_period,
        next_rotation_time,
        protection,
        provider,
        provider_key,
    } = req;
    let mut hsm = None;
    let external = match (protection.as_deref(), provider, provider_key) {
        (Some("hsm"), Some(provider), None) => {
            hsm = Some(provider);
            None
        }
        (Some("hsm"), _, _) => {
            return Err(ApiError::invalid(
                "provider",
                "an hsm key is generated in the provider named by provider; give no provider_key",
            ));
        }
        (None | Some("software"), None, None) => None,
        (None | Some("external"), Some(provider), Some(key)) => {
            Some(strongroom_core::ExternalKey { provider, key })
        }
        (Some("external"), _, _) | (None, _, _) => {
            return Err(ApiError::invalid(
                "provider",
                "an external key needs both provider and provider_key",
            ));
        }
        (Some("software"), _, _) => {
            return Err(ApiError::invalid(
                "protection",
                "a software key has no provider; use protection external",
            ));
        }
        (Some(_), _, _) => {
            return Err(ApiError::invalid(
                "protection",
                "must be software, external or hsm",
            ));
        }
    };
    let input = CreateKeyInput {
        ring: ring_name(&ring)?,
        name: Some(KeyName::try_new(&name).map_err(|e| ApiError::invalid("name", e.to_string()))?),
        purpose: purpose
            .map(|p| {
                p.parse::<Purpose>().map_err(|_| {
                    ApiError::invalid(
                        "purpose",
                        "must be one of encrypt-decrypt, asymmetric-decrypt, sign-verify, mac, key-agreement",
                    )
                })
            })
            .transpose()?,
        algorithm: algorithm
            .map(|a| {
                a.parse().map_err(|_| {
                    ApiError::invalid(
                        "algorithm",
                        "unknown algorithm; see docs/api.md for the list",
                    )
                })
            })
            .transpose()?,
        description,
        labels: labels.0,
        exportable,
        rotation_period_secs: rotation_period
            .map(|p| duration(&p, "rotation_period"))
            .transpose()?,
        next_rotation_time: next_rotation_time
            .map(|t| timestamp(&t, "next_rotation_time"))
            .transpose()?,
        external,
        hsm,
    };
    let (key, v) = svc.create_key(&ctx, input).await?;
    let path = format!("{}/{}", key.ring, key.name);
    Ok(created(CreateKeyResponse {
        key: KeyResponse::from(key),
        first_version: VersionResponse::new(&path, v),
    }))
}

async fn get_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let k = svc.get_key(&ctx, &key_path(&ring, &key)?).await?;
    Ok(ok(KeyResponse::from(k)))
}

async fn list_keys(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(ring): Path<String>,
    Query(q): Query<ListKeysQuery>,
) -> ApiResult<Response> {
    let ListKeysQuery {
        page_size,
        page_token,
        labels,
        state,
        purpose,
    } = q;
    let mut filter = KeyFilter::default();
    for pair in labels
        .iter()
        .flat_map(|l| l.split(','))
        .filter(|s| !s.is_empty())
    {
        let (k, v) = pair.split_once(':').ok_or_else(|| {
            ApiError::invalid("labels", "expected key:value pairs separated by commas")
        })?;
        filter.labels.insert(k.to_string(), v.to_string());
    }
    filter.state = state
        .map(|s| match s.as_str() {
            "enabled" => Ok(KeyState::Enabled),
            "disabled" => Ok(KeyState::Disabled),
            "deletion_scheduled" => Ok(KeyState::DeletionScheduled),
            "deleted" => Ok(KeyState::Deleted),
            _ => Err(ApiError::invalid(
                "state",
                "must be enabled, disabled, deletion_scheduled or deleted",
            )),
        })
        .transpose()?;
    filter.purpose = purpose
        .map(|p| {
            p.parse::<Purpose>()
                .map_err(|_| ApiError::invalid("purpose", "unknown purpose"))
        })
        .transpose()?;
    let p = svc
        .list_keys(
            &ctx,
            &ring_name(&ring)?,
            &filter,
            &page(page_size, page_token)?,
        )
        .await?;
    Ok(ok(list(p, KeyResponse::from)))
}

async fn update_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    Json(req): Json<UpdateKeyRequest>,
) -> ApiResult<Response> {
    let UpdateKeyRequest {
        description,
        labels,
        rotation_period,
        next_rotation_time,
        exportable,
    } = req;
    let input = UpdateKeyInput {
        description,
        labels: labels.map(|l| l.0),
        set_labels: Default::default(),
        remove_labels: Vec::new(),
        rotation_period_secs: rotation_period
            .map(|p| p.map(|p| duration(&p, "rotation_period")).transpose())
            .transpose()?,
        next_rotation_time: next_rotation_time
            .map(|t| timestamp(&t, "next_rotation_time"))
            .transpose()?,
        exportable,
    };
    let k = svc.update_key(&ctx, &key_path(&ring, &key)?, input).await?;
    Ok(ok(KeyResponse::from(k)))
}

async fn enable_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<SetEnabledRequest>,
) -> ApiResult<Response> {
    Ok(ok(KeyResponse::from(
        svc.set_key_enabled_at(&ctx, &key_path(&ring, &key)?, true, req.at_provider)
            .await?,
    )))
}

async fn disable_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<SetEnabledRequest>,
) -> ApiResult<Response> {
    Ok(ok(KeyResponse::from(
        svc.set_key_enabled_at(&ctx, &key_path(&ring, &key)?, false, req.at_provider)
            .await?,
    )))
}

async fn get_provider_view(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(ok(ProviderViewResponse::from(
        svc.provider_view(&ctx, &key_path(&ring, &key)?).await?,
    )))
}

async fn schedule_key_deletion(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<ScheduleDeletionRequest>,
) -> ApiResult<Response> {
    let ScheduleDeletionRequest { window } = req;
    let window = window.map(|w| duration(&w, "window")).transpose()?;
    Ok(ok(KeyResponse::from(
        svc.schedule_key_deletion(&ctx, &key_path(&ring, &key)?, window)
            .await?,
    )))
}

async fn cancel_key_deletion(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(ok(KeyResponse::from(
        svc.cancel_key_deletion(&ctx, &key_path(&ring, &key)?)
            .await?,
    )))
}

async fn set_primary(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    Json(req): Json<SetPrimaryRequest>,
) -> ApiResult<Response> {
    let SetPrimaryRequest { version } = req;
    Ok(ok(KeyResponse::from(
        svc.set_primary_version(&ctx, &key_path(&ring, &key)?, version)
            .await?,
    )))
}

async fn public_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    Query(q): Query<PublicKeyQuery>,
) -> ApiResult<Response> {
    let PublicKeyQuery { version } = q;
    let out = svc
        .get_public_key(&ctx, &key_path(&ring, &key)?, version)
        .await?;
    Ok(ok(PublicKeyResponse {
        key: out.key.path(),
        version: out.version,
        algorithm: out.algorithm.to_string(),
        pem: strongroom_crypto::keys::pem("PUBLIC KEY", &out.der),
        der: B64Bytes(out.der),
    }))
}

// ---- versions ----

async fn create_version(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<CreateVersionRequest>,
) -> ApiResult<Response> {
    let CreateVersionRequest { make_primary } = req;
    let (k, v) = svc
        .create_version(&ctx, &key_path(&ring, &key)?, make_primary.unwrap_or(true))
        .await?;
    Ok(created(VersionResponse::new(
        &format!("{}/{}", k.ring, k.name),
        v,
    )))
}

async fn list_versions(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let PageQuery {
        page_size,
        page_token,
    } = q;
    let (k, p) = svc
        .list_versions(&ctx, &key_path(&ring, &key)?, &page(page_size, page_token)?)
        .await?;
    let path = format!("{}/{}", k.ring, k.name);
    Ok(ok(list(p, |v| VersionResponse::new(&path, v))))
}

async fn get_version(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key, version)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (k, v) = svc
        .get_version(&ctx, &key_path(&ring, &key)?, version_no(&version)?)
        .await?;
    Ok(ok(VersionResponse::new(
        &format!("{}/{}", k.ring, k.name),
        v,
    )))
}

async fn enable_version(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key, version)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let v = svc
        .enable_version(&ctx, &key_path(&ring, &key)?, version_no(&version)?)
        .await?;
    Ok(ok(VersionResponse::new(&format!("{ring}/{key}"), v)))
}

async fn disable_version(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key, version)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let v = svc
        .disable_version(&ctx, &key_path(&ring, &key)?, version_no(&version)?)
        .await?;
    Ok(ok(VersionResponse::new(&format!("{ring}/{key}"), v)))
}

async fn destroy_version(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key, version)): Path<(String, String, String)>,
    OptionalJson(req): OptionalJson<DestroyVersionRequest>,
) -> ApiResult<Response> {
    let DestroyVersionRequest { window } = req;
    let window = window.map(|w| duration(&w, "window")).transpose()?;
    let v = svc
        .schedule_version_destruction(&ctx, &key_path(&ring, &key)?, version_no(&version)?, window)
        .await?;
    Ok(ok(VersionResponse::new(&format!("{ring}/{key}"), v)))
}

async fn restore_version(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path((ring, key, version)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let v = svc
        .restore_version(&ctx, &key_path(&ring, &key)?, version_no(&version)?)
        .await?;
    Ok(ok(VersionResponse::new(&format!("{ring}/{key}"), v)))
}

// ---- aliases ----

async fn create_alias(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<CreateAliasRequest>,
) -> ApiResult<Response> {
    let CreateAliasRequest { name, key } = req;
    let a = svc
        .put_alias(&ctx, &alias_name(&name)?, &key_ref(&key, "key")?, false)
        .await?;
    Ok(created(AliasResponse::from(a)))
}

async fn update_alias(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<UpdateAliasRequest>,
) -> ApiResult<Response> {
    let UpdateAliasRequest { key } = req;
    let a = svc
        .put_alias(&ctx, &alias_name(&name)?, &key_ref(&key, "key")?, true)
        .await?;
    Ok(ok(AliasResponse::from(a)))
}

async fn get_alias(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(AliasResponse::from(
        svc.get_alias(&ctx, &alias_name(&name)?).await?,
    )))
}

async fn delete_alias(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    svc.delete_alias(&ctx, &alias_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_aliases(
    State(svc): App,
    Ctx(ctx): Ctx,
    Query(q): Query<ListAliasesQuery>,
) -> ApiResult<Response> {
    let ListAliasesQuery {
        page_size,
        page_token,
        key,
    } = q;
    let key = key.map(|k| key_ref(&k, "key")).transpose()?;
    let p = svc
        .list_aliases(&ctx, key.as_ref(), &page(page_size, page_token)?)
        .await?;
    Ok(ok(list(p, AliasResponse::from)))
}

// ---- crypto ----

async fn encrypt(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<EncryptRequest>,
) -> ApiResult<Response> {
    let EncryptRequest {
        key,
        plaintext,
        context: c,
    } = req;
    let input = EncryptInput {
        key: key_ref(&key, "key")?,
        plaintext: plaintext.0,
        context: context(c, "context")?,
    };
    let out = svc.encrypt(&ctx, input).await?;
    Ok(ok(EncryptResponse::new(
        &out.key,
        out.version,
        out.ciphertext,
    )))
}

async fn decrypt(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<DecryptRequest>,
) -> ApiResult<Response> {
    let DecryptRequest {
        ciphertext,
        context: c,
        key,
    } = req;
    let input = DecryptInput {
        ciphertext: ciphertext.0,
        context: context(c, "context")?,
        key: key.map(|k| key_ref(&k, "key")).transpose()?,
    };
    let out = svc.decrypt(&ctx, input).await?;
    Ok(ok(DecryptResponse {
        key: out.key.path(),
        key_id: out.key.id.to_string(),
        version: out.version,
        plaintext: SecretB64(out.plaintext),
    }))
}

async fn generate_data_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<GenerateDataKeyRequest>,
) -> ApiResult<Response> {
    let GenerateDataKeyRequest {
        key,
        length,
        context: c,
        include_plaintext,
    } = req;
    let input = GenerateDataKeyInput {
        key: key_ref(&key, "key")?,
        length: length.unwrap_or(DEFAULT_DATA_KEY_LEN),
        context: context(c, "context")?,
        include_plaintext: include_plaintext.unwrap_or(true),
    };
    let out = svc.generate_data_key(&ctx, input).await?;
    let w = out.wrapped;
    Ok(ok(GenerateDataKeyResponse {
        key: w.key.path(),
        key_id: w.key.id.to_string(),
        version: w.version,
        ciphertext: B64Bytes(w.ciphertext),
        plaintext: out.plaintext.map(SecretB64),
    }))
}

async fn re_encrypt(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<ReEncryptRequest>,
) -> ApiResult<Response> {
    let ReEncryptRequest {
        ciphertext,
        source_context,
        destination_key,
        destination_context,
    } = req;
    let input = ReEncryptInput {
        source: None,
        ciphertext: ciphertext.0,
        source_context: context(source_context, "source_context")?,
        destination: destination_key
            .map(|k| key_ref(&k, "destination_key"))
            .transpose()?,
        destination_context: context(destination_context, "destination_context")?,
    };
    let out = svc.re_encrypt(&ctx, input).await?;
    Ok(ok(ReEncryptResponse {
        source_key: out.source_key.path(),
        source_version: out.source_version,
        key: out.output.key.path(),
        key_id: out.output.key.id.to_string(),
        version: out.output.version,
        ciphertext: B64Bytes(out.output.ciphertext),
    }))
}

async fn asymmetric_decrypt(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<AsymmetricDecryptRequest>,
) -> ApiResult<Response> {
    let AsymmetricDecryptRequest {
        key,
        version,
        ciphertext,
    } = req;
    let out = svc
        .asymmetric_decrypt(&ctx, &key_ref(&key, "key")?, version, &ciphertext.0)
        .await?;
    Ok(ok(DecryptResponse {
        key: out.key.path(),
        key_id: out.key.id.to_string(),
        version: out.version,
        plaintext: SecretB64(out.plaintext),
    }))
}

fn sign_data(message: Option<SecretB64>, digest: Option<B64Bytes>) -> ApiResult<SignData> {
    match (message, digest) {
        (Some(m), None) => Ok(SignData::Message(m.0)),
        (None, Some(d)) => Ok(SignData::Digest(d.0)),
        _ => Err(ApiError::invalid(
            "message",
            "give exactly one of `message` and `digest`",
        )),
    }
}

async fn sign(State(svc): App, Ctx(ctx): Ctx, Json(req): Json<SignRequest>) -> ApiResult<Response> {
    let SignRequest {
        key,
        version,
        message,
        digest,
    } = req;
    let out = svc
        .sign(
            &ctx,
            &key_ref(&key, "key")?,
            version,
            sign_data(message, digest)?,
            None,
        )
        .await?;
    Ok(ok(SignResponse {
        key: out.key.path(),
        version: out.version,
        algorithm: out.algorithm.to_string(),
        signature: B64Bytes(out.signature),
    }))
}

async fn verify(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<VerifyRequest>,
) -> ApiResult<Response> {
    let VerifyRequest {
        key,
        version,
        message,
        digest,
        signature,
    } = req;
    let out = svc
        .verify(
            &ctx,
            &key_ref(&key, "key")?,
            version,
            sign_data(message, digest)?,
            &signature.0,
            None,
        )
        .await?;
    Ok(ok(VerifyResponse {
        key: out.key.path(),
        version: out.version,
        valid: out.valid,
    }))
}

async fn mac(State(svc): App, Ctx(ctx): Ctx, Json(req): Json<MacRequest>) -> ApiResult<Response> {
    let MacRequest {
        key,
        version,
        message,
    } = req;
    let out = svc
        .mac(&ctx, &key_ref(&key, "key")?, version, &message.0, None)
        .await?;
    Ok(ok(MacResponse {
        key: out.key.path(),
        version: out.version,
        mac: B64Bytes(out.mac),
    }))
}

async fn derive_shared_secret(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<DeriveSharedSecretRequest>,
) -> ApiResult<Response> {
    let DeriveSharedSecretRequest {
        key,
        version,
        public_key,
    } = req;
    let out = svc
        .derive_shared_secret(&ctx, &key_ref(&key, "key")?, version, &public_key.0)
        .await?;
    Ok(ok(DeriveSharedSecretResponse {
        key: out.key.path(),
        version: out.version,
        shared_secret: SecretB64(out.secret),
    }))
}

async fn mac_verify(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<MacVerifyRequest>,
) -> ApiResult<Response> {
    let MacVerifyRequest {
        key,
        version,
        message,
        mac,
    } = req;
    let out = svc
        .mac_verify(
            &ctx,
            &key_ref(&key, "key")?,
            version,
            &message.0,
            &mac.0,
            None,
        )
        .await?;
    Ok(ok(VerifyResponse {
        key: out.key.path(),
        version: out.version,
        valid: out.valid,
    }))
}

async fn random(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<RandomRequest>,
) -> ApiResult<Response> {
    let RandomRequest { length } = req;
    let r = svc.generate_random(&ctx, length).await?;
    Ok(ok(RandomResponse {
        random: SecretB64(r),
    }))
}

// ---- tokens ----

async fn create_token(
    State(svc): App,
    Ctx(ctx): Ctx,
    OptionalJson(req): OptionalJson<CreateTokenRequest>,
) -> ApiResult<Response> {
    let CreateTokenRequest { ttl, description } = req;
    let ttl = ttl.map(|t| duration(&t, "ttl")).transpose()?;
    let t = svc.create_token(&ctx, ttl, description).await?;
    // Exposed to hand the new token to the caller, once.
    let token = t.secret.expose_secret().to_string();
    Ok(created(NewTokenResponse {
        info: TokenResponse::from(t.info),
        token,
    }))
}

async fn list_tokens(
    State(svc): App,
    Ctx(ctx): Ctx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let PageQuery {
        page_size,
        page_token,
    } = q;
    let p = svc.list_tokens(&ctx, &page(page_size, page_token)?).await?;
    Ok(ok(list(p, TokenResponse::from)))
}

async fn lookup_self(State(svc): App, Ctx(ctx): Ctx) -> ApiResult<Response> {
    Ok(ok(TokenResponse::from(svc.lookup_self(&ctx).await?)))
}

async fn revoke_token(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(TokenResponse::from(svc.revoke_token(&ctx, &id).await?)))
}

// ---- principals and policies ----

fn principal_name(s: &str) -> ApiResult<PrincipalName> {
    PrincipalName::try_new(s).map_err(|_| ApiError::invalid("principal", "principal names are 1 to 128 characters of A-Z a-z 0-9 _ - @ . and start with a letter or digit"))
}

async fn create_principal(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<CreatePrincipalRequest>,
) -> ApiResult<Response> {
    let CreatePrincipalRequest {
        name,
        kind,
        roles,
        labels,
        description,
        rate_limits,
        tls_certs,
    } = req;
    let input = PrincipalInput {
        name: principal_name(&name)?,
        kind: kind.unwrap_or_else(|| "workload".into()),
        roles,
        labels: labels.0,
        description,
        rate_limits: rate_limits.0,
        tls_certs,
    };
    Ok(created(PrincipalResponse::from(
        svc.create_principal(&ctx, input).await?,
    )))
}

async fn list_principals(
    State(svc): App,
    Ctx(ctx): Ctx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let PageQuery {
        page_size,
        page_token,
    } = q;
    let p = svc
        .list_principals(&ctx, &page(page_size, page_token)?)
        .await?;
    Ok(ok(list(p, PrincipalResponse::from)))
}

async fn get_principal(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(PrincipalResponse::from(
        svc.get_principal(&ctx, &principal_name(&name)?).await?,
    )))
}

async fn update_principal(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<UpdatePrincipalRequest>,
) -> ApiResult<Response> {
    let UpdatePrincipalRequest {
        roles,
        labels,
        description,
        disabled,
        rate_limits,
        tls_certs,
    } = req;
    let update = PrincipalUpdate {
        roles,
        labels: labels.map(|l| l.0),
        description,
        disabled,
        rate_limits: rate_limits.map(|r| r.0),
        tls_certs,
    };
    Ok(ok(PrincipalResponse::from(
        svc.update_principal(&ctx, &principal_name(&name)?, update)
            .await?,
    )))
}

async fn create_access_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    OptionalJson(req): OptionalJson<CreateAccessKeyRequest>,
) -> ApiResult<Response> {
    let CreateAccessKeyRequest { description } = req;
    let k = svc
        .create_access_key(&ctx, &principal_name(&name)?, description)
        .await?;
    // Exposed to hand the new secret to the caller, once.
    let secret_access_key = k.secret.expose_secret().to_string();
    Ok(created(NewAccessKeyResponse {
        info: AccessKeyResponse::from(k.info),
        secret_access_key,
    }))
}

async fn list_access_keys(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let keys = svc.list_access_keys(&ctx, &principal_name(&name)?).await?;
    Ok(ok(AccessKeyList {
        items: keys.into_iter().map(AccessKeyResponse::from).collect(),
    }))
}

async fn revoke_access_key(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(AccessKeyResponse::from(
        svc.revoke_access_key(&ctx, &id).await?,
    )))
}

async fn create_principal_token(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    OptionalJson(req): OptionalJson<CreateTokenRequest>,
) -> ApiResult<Response> {
    let CreateTokenRequest { ttl, description } = req;
    let ttl = ttl.map(|t| duration(&t, "ttl")).transpose()?;
    let t = svc
        .create_token_for(&ctx, &principal_name(&name)?, ttl, description)
        .await?;
    // Exposed to hand the new token to the caller, once.
    let token = t.secret.expose_secret().to_string();
    Ok(created(NewTokenResponse {
        info: TokenResponse::from(t.info),
        token,
    }))
}

async fn list_policies(State(svc): App, Ctx(ctx): Ctx) -> ApiResult<Response> {
    let items: Vec<PolicyResponse> = svc
        .list_policies(&ctx)
        .await?
        .into_iter()
        .map(PolicyResponse::from)
        .collect();
    Ok(ok(ListResponse {
        items,
        next_page_token: None,
    }))
}

async fn get_policy(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Query(q): Query<PolicyQuery>,
) -> ApiResult<Response> {
    let PolicyQuery { history, version } = q;
    if version.is_some() {
        return Err(ApiError::invalid("version", "only DELETE takes a version"));
    }
    if history.unwrap_or(false) {
        let items: Vec<PolicyResponse> = svc
            .policy_history(&ctx, &name)
            .await?
            .into_iter()
            .map(PolicyResponse::from)
            .collect();
        return Ok(ok(ListResponse {
            items,
            next_page_token: None,
        }));
    }
    Ok(ok(PolicyResponse::from(svc.get_policy(&ctx, &name).await?)))
}

async fn put_policy(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<PutPolicyRequest>,
) -> ApiResult<Response> {
    let PutPolicyRequest { text, version } = req;
    let p = svc.put_policy(&ctx, &name, &text, version).await?;
    let fresh = p.version == 1 || version.is_none();
    let body = PolicyResponse::from(p);
    Ok(if fresh { created(body) } else { ok(body) })
}

async fn delete_policy(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Query(q): Query<PolicyQuery>,
) -> ApiResult<Response> {
    let PolicyQuery { history, version } = q;
    if history.is_some() {
        return Err(ApiError::invalid("history", "not a DELETE parameter"));
    }
    let version = version.ok_or_else(|| {
        ApiError::invalid(
            "version",
            "give the version being deleted (?version=N), so a concurrent edit is not lost",
        )
    })?;
    svc.delete_policy(&ctx, &name, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn validate_policy(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<ValidatePolicyRequest>,
) -> ApiResult<Response> {
    let ValidatePolicyRequest { name, text } = req;
    svc.validate_policy(&ctx, &name, &text).await?;
    Ok(ok(serde_json::json!({"valid": true})))
}

async fn test_policy(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<TestPolicyRequest>,
) -> ApiResult<Response> {
    let TestPolicyRequest {
        principal,
        action,
        key,
        key_ring,
        context: c,
        source_ip,
    } = req;
    let resource = match (key, key_ring) {
        (Some(k), None) => TestResource::Key(key_ref(&k, "key")?),
        (None, Some(r)) => TestResource::KeyRing(ring_name(&r)?),
        (None, None) => TestResource::System,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "key",
                "give at most one of `key` and `key_ring`",
            ));
        }
    };
    let t = PolicyTest {
        principal: principal_name(&principal)?,
        action,
        resource,
        context: context(c, "context")?,
        source_ip,
    };
    let d = svc.test_policy(&ctx, t).await?;
    Ok(ok(TestPolicyResponse {
        allowed: d.allowed,
        decision: if d.allowed { "allow" } else { "deny" },
        policies: d.policies,
        errors: d.errors,
    }))
}

async fn policy_schema() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        strongroom_core::POLICY_SCHEMA,
    )
        .into_response()
}

async fn audit_events(
    State(svc): App,
    Ctx(ctx): Ctx,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    let AuditQuery {
        after_seq,
        since,
        until,
        principal,
        key,
        operation,
        outcome,
        limit,
        format,
    } = q;
    for (field, t) in [("since", &since), ("until", &until)] {
        if let Some(t) = t {
            timestamp(t, field)?;
        }
    }
    if let Some(o) = &outcome
        && o != "ok"
        && o != "error"
    {
        return Err(ApiError::invalid("outcome", "must be ok or error"));
    }
    let ndjson = match format.as_deref() {
        None | Some("json") => false,
        Some("ndjson") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or ndjson")),
    };
    // Times in the log are UTC RFC 3339 at second precision; normalise bounds to the same
    // form so they compare as text.
    let norm = |t: Option<String>| {
        t.and_then(|t| Timestamp::parse_rfc3339(&t))
            .map(|t| t.to_rfc3339())
    };
    let filter = strongroom_audit::query::Filter {
        after_seq,
        since: norm(since),
        until: norm(until),
        principal,
        key,
        operation,
        outcome,
        limit: limit.unwrap_or(100),
    };
    let page = svc.query_audit(&ctx, filter).await?;
    if ndjson {
        let mut body = String::new();
        for e in &page.events {
            body.push_str(&e.to_string());
            body.push('\n');
        }
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
            body,
        )
            .into_response());
    }
    Ok(ok(AuditEventsResponse {
        items: page.events,
        next_after_seq: page.next_after_seq,
    }))
}

// ---- federation ----

async fn list_issuers(State(svc): App, Ctx(ctx): Ctx) -> ApiResult<Response> {
    let items: Vec<IssuerResponse> = svc
        .list_issuers(&ctx)
        .await?
        .into_iter()
        .map(IssuerResponse::from)
        .collect();
    Ok(ok(ListResponse {
        items,
        next_page_token: None,
    }))
}

async fn put_issuer(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
    Json(req): Json<PutIssuerRequest>,
) -> ApiResult<Response> {
    let PutIssuerRequest {
        issuer,
        audiences,
        jwks,
        jwks_uri,
        rules,
        max_ttl,
    } = req;
    let input = strongroom_core::federation::IssuerInput {
        name,
        issuer,
        audiences,
        jwks: jwks.map(|j| j.to_string()),
        jwks_uri,
        rules: rules
            .into_iter()
            .map(|r| strongroom_core::ClaimRule {
                claims: r.claims,
                principal: r.principal,
            })
            .collect(),
        max_ttl_secs: max_ttl.map(|t| duration(&t, "max_ttl")).transpose()?,
    };
    Ok(ok(IssuerResponse::from(svc.put_issuer(&ctx, input).await?)))
}

async fn delete_issuer(
    State(svc): App,
    Ctx(ctx): Ctx,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    svc.delete_issuer(&ctx, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Unauthenticated by design: the JWT is the credential.
async fn exchange_token(
    State(svc): App,
    Ctx(ctx): Ctx,
    Json(req): Json<ExchangeRequest>,
) -> ApiResult<Response> {
    let ExchangeRequest {
        token,
        issuer,
        ttl,
        credential,
    } = req;
    let ttl = ttl.map(|t| duration(&t, "ttl")).transpose()?;
    match credential.as_deref() {
        None | Some("token") => {}
        Some("aws") => {
            let s = svc
                .exchange_for_aws_session(&ctx, issuer.as_deref(), &token.0, ttl)
                .await?;
            // Exposed to hand the new credentials to the caller, once.
            let secret_access_key = s.secret.expose_secret().to_string();
            let session_token = s.session_token.expose_secret().to_string();
            return Ok(created(AwsSessionResponse {
                info: AccessKeyResponse::from(s.info),
                secret_access_key,
                session_token,
            }));
        }
        Some(_) => return Err(ApiError::invalid("credential", "must be token or aws")),
    }
    let t = svc
        .exchange_token(&ctx, issuer.as_deref(), &token.0, ttl)
        .await?;
    // Exposed to hand the new token to the caller, once.
    let secret = t.secret.expose_secret().to_string();
    Ok(created(NewTokenResponse {
        info: TokenResponse::from(t.info),
        token: secret,
    }))
}
