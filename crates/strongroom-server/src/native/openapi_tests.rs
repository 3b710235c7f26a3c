//! Keeps `docs/openapi.json` in step with the router: the same (method, path) pairs, each
//! operation named and secured as the API actually behaves.

use std::collections::BTreeSet;

use serde_json::Value;

use super::OPENAPI;

/// Every route `routes()` serves, as (method, axum path, handler). Must mirror `routes()` in
/// `native/mod.rs`: a route added there and not here (or in the document) fails
/// `document_has_exactly_the_routed_operations`. The handler's name is the operationId.
#[rustfmt::skip] // One route per line reads as a table; some lines pass 100 columns.
const ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/v1/sys/health", "health"),
    ("get", "/v1/sys/ready", "ready"),
    ("post", "/v1/sys/backup", "create_backup"),
    ("get", "/v1/providers", "list_providers"),
    ("post", "/v1/key-sets", "create_key_set"),
    ("get", "/v1/key-sets", "list_key_sets"),
    ("get", "/v1/key-sets/{name}", "get_key_set"),
    ("put", "/v1/key-sets/{name}", "update_key_set"),
    ("delete", "/v1/key-sets/{name}", "delete_key_set"),
    ("post", "/v1/key-sets/{name}/generate-data-key", "key_set_generate_data_key"),
    ("post", "/v1/key-sets/{name}/wrap", "key_set_wrap"),
    ("post", "/v1/key-sets/{name}/decrypt", "key_set_decrypt"),
    ("get", "/v1/openapi.json", "openapi"),
    ("post", "/v1/keyrings", "create_key_ring"),
    ("get", "/v1/keyrings", "list_key_rings"),
    ("get", "/v1/keyrings/{ring}", "get_key_ring"),
    ("post", "/v1/keyrings/{ring}/keys", "create_key"),
    ("get", "/v1/keyrings/{ring}/keys", "list_keys"),
    ("get", "/v1/keyrings/{ring}/keys/{key}", "get_key"),
    ("patch", "/v1/keyrings/{ring}/keys/{key}", "update_key"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/enable", "enable_key"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/disable", "disable_key"),
    ("get", "/v1/keyrings/{ring}/keys/{key}/provider", "get_provider_view"),
    (
        "post",
        "/v1/keyrings/{ring}/keys/{key}/schedule-deletion",
        "schedule_key_deletion",
    ),
    (
        "post",
        "/v1/keyrings/{ring}/keys/{key}/cancel-deletion",
        "cancel_key_deletion",
    ),
    ("post", "/v1/keyrings/{ring}/keys/{key}/primary", "set_primary"),
    ("get", "/v1/keyrings/{ring}/keys/{key}/public-key", "public_key"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/versions", "create_version"),
    ("get", "/v1/keyrings/{ring}/keys/{key}/versions", "list_versions"),
    ("get", "/v1/keyrings/{ring}/keys/{key}/versions/{version}", "get_version"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/versions/{version}/enable", "enable_version"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/versions/{version}/disable", "disable_version"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/versions/{version}/destroy", "destroy_version"),
    ("post", "/v1/keyrings/{ring}/keys/{key}/versions/{version}/restore", "restore_version"),
    ("post", "/v1/aliases", "create_alias"),
    ("get", "/v1/aliases", "list_aliases"),
    ("get", "/v1/aliases/{*name}", "get_alias"),
    ("put", "/v1/aliases/{*name}", "update_alias"),
    ("delete", "/v1/aliases/{*name}", "delete_alias"),
    ("post", "/v1/crypto/encrypt", "encrypt"),
    ("post", "/v1/crypto/decrypt", "decrypt"),
    ("post", "/v1/crypto/generate-data-key", "generate_data_key"),
    ("post", "/v1/crypto/re-encrypt", "re_encrypt"),
    ("post", "/v1/crypto/asymmetric-decrypt", "asymmetric_decrypt"),
    ("post", "/v1/crypto/sign", "sign"),
    ("post", "/v1/crypto/verify", "verify"),
    ("post", "/v1/crypto/mac", "mac"),
    ("post", "/v1/crypto/mac-verify", "mac_verify"),
    (
        "post",
        "/v1/crypto/derive-shared-secret",
        "derive_shared_secret",
    ),
    ("post", "/v1/crypto/random", "random"),
    ("post", "/v1/tokens", "create_token"),
    ("get", "/v1/tokens", "list_tokens"),
    ("get", "/v1/tokens/self", "lookup_self"),
    ("delete", "/v1/tokens/{id}", "revoke_token"),
    ("post", "/v1/principals", "create_principal"),
    ("get", "/v1/principals", "list_principals"),
    ("get", "/v1/principals/{name}", "get_principal"),
    ("patch", "/v1/principals/{name}", "update_principal"),
    ("post", "/v1/principals/{name}/tokens", "create_principal_token"),
    ("post", "/v1/principals/{name}/access-keys", "create_access_key"),
    ("get", "/v1/principals/{name}/access-keys", "list_access_keys"),
    ("delete", "/v1/access-keys/{id}", "revoke_access_key"),
    ("get", "/v1/policies", "list_policies"),
    ("get", "/v1/policies/{name}", "get_policy"),
    ("put", "/v1/policies/{name}", "put_policy"),
    ("delete", "/v1/policies/{name}", "delete_policy"),
    ("post", "/v1/policy/validate", "validate_policy"),
    ("post", "/v1/policy/test", "test_policy"),
    ("get", "/v1/policy/schema", "policy_schema"),
    ("get", "/v1/audit/events", "audit_events"),
    ("get", "/v1/federation/issuers", "list_issuers"),
    ("put", "/v1/federation/issuers/{name}", "put_issuer"),
    ("delete", "/v1/federation/issuers/{name}", "delete_issuer"),
    ("post", "/v1/auth/exchange", "exchange_token"),
];

/// The routes that answer without a token: their handlers take no `Ctx`, so they never reach
/// `KeyService`'s authentication.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/v1/sys/health"),
    ("get", "/v1/sys/ready"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/policy/schema"),
    ("post", "/v1/auth/exchange"),
];

/// The keys of a path item that are operations (the rest are `parameters`, `summary`, …).
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("docs/openapi.json is not valid JSON")
}

/// axum writes a catch-all parameter `{*name}`; OpenAPI writes it `{name}`.
fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// Every operation in the document, as (method, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"]
        .as_object()
        .expect("`paths` is missing or not an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is not an object");
        for (method, op) in item {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn document_parses_as_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
}

/// The (method, path, handler) triples of the `.route(…)` calls in `routes()`, read from this
/// module's source, so that `ROUTES` cannot silently fall behind the router.
fn routes_in_source() -> BTreeSet<(String, String, String)> {
    let src = include_str!("mod.rs");
    let start = src
        .find("fn routes()")
        .expect("native/mod.rs has no `fn routes()`");
    let body = &src[start..];
    // Invariant: `routes()` is a top-level fn, so its body ends at the first `}` in column 0.
    let body = &body[..body
        .find("\n}")
        .expect("`fn routes()` has no closing brace")];
    let mut out = BTreeSet::new();
    for call in body.split(".route(").skip(1) {
        let path = call
            .split('"')
            .nth(1)
            .expect("a `.route(` call without a path literal");
        for method in METHODS {
            let pattern = format!("{method}(");
            let mut rest = call;
            while let Some(i) = rest.find(&pattern) {
                let standalone = !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                rest = &rest[i + pattern.len()..];
                if standalone {
                    let handler: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.insert((method.to_string(), path.to_string(), handler));
                }
            }
        }
    }
    out
}

#[test]
fn route_list_mirrors_routes_fn() {
    let listed: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(m, p, h)| (m.to_string(), p.to_string(), h.to_string()))
        .collect();
    let routed = routes_in_source();
    let missing: Vec<_> = routed.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in routes() but not in ROUTES (document them, then list them): {missing:?}; \
         in ROUTES but not in routes(): {extra:?}"
    );
}

#[test]
fn document_has_exactly_the_routed_operations() {
    let doc = document();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), openapi_path(p)))
        .collect();
    assert_eq!(routed.len(), ROUTES.len(), "ROUTES lists a route twice");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routed but not in docs/openapi.json: {missing:?}; \
         in docs/openapi.json but not routed: {extra:?}"
    );
}

#[test]
fn every_operation_but_the_public_ones_needs_a_bearer_token() {
    let doc = document();
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"].as_str(), Some("http"));
    assert_eq!(scheme["scheme"].as_str(), Some("bearer"));
    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    for (method, path, op) in operations(&doc) {
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} does not declare `security`"));
        if public.contains(&(method.clone(), path.clone())) {
            assert!(
                security.is_empty(),
                "{method} {path} answers without a token, so its `security` must be []"
            );
        } else {
            assert!(
                security.iter().any(|req| req.get("bearerAuth").is_some()),
                "{method} {path} does not require bearerAuth"
            );
        }
    }
}

#[test]
fn every_operation_has_an_operation_id() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(
            seen.insert(id.to_string()),
            "operationId {id} is used twice"
        );
    }
}

#[test]
fn operation_ids_are_the_handler_names() {
    let doc = document();
    for (method, path, handler) in ROUTES {
        let op = &doc["paths"][openapi_path(path)][*method];
        assert_eq!(
            op["operationId"].as_str(),
            Some(*handler),
            "{method} {path} is served by {handler}"
        );
    }
}
