//! HTTPS and mutual TLS: a client certificate issued by the client CA and registered to a
//! principal authenticates without a token (RELIABILITY A6).

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use serde_json::{Value, json};

use crate::support::{ROOT, TestServer, bin};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
}

fn ca(name: &str) -> (CertificateParams, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    (p, KeyPair::generate().unwrap())
}

/// A server CA and cert for 127.0.0.1, a client CA, a client cert from it, and a look-alike
/// self-signed client cert with the same subject.
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let w = |f: &str, s: String| std::fs::write(dir.path().join(f), s).unwrap();
    let (sca_p, sca_k) = ca("test server CA");
    w("server-ca.pem", sca_p.self_signed(&sca_k).unwrap().pem());
    let server_issuer = Issuer::new(sca_p, sca_k);
    let mut sp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    sp.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let sk = KeyPair::generate().unwrap();
    w(
        "server.pem",
        sp.signed_by(&sk, &server_issuer).unwrap().pem(),
    );
    w("server.key", sk.serialize_pem());

    let (cca_p, cca_k) = ca("test client CA");
    w("client-ca.pem", cca_p.self_signed(&cca_k).unwrap().pem());
    let client_issuer = Issuer::new(cca_p, cca_k);
    let client_params = || {
        let mut p = CertificateParams::new(vec!["payments.svc".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "payments");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p
    };
    let ck = KeyPair::generate().unwrap();
    w(
        "client.pem",
        client_params()
            .signed_by(&ck, &client_issuer)
            .unwrap()
            .pem(),
    );
    w("client.key", ck.serialize_pem());
    let ok2 = KeyPair::generate().unwrap();
    w(
        "other.pem",
        client_params()
            .signed_by(&ok2, &client_issuer)
            .unwrap()
            .pem(),
    );
    w("other.key", ok2.serialize_pem());
    let fk = KeyPair::generate().unwrap();
    w(
        "forged.pem",
        client_params().self_signed(&fk).unwrap().pem(),
    );
    w("forged.key", fk.serialize_pem());
    Pki { dir }
}

fn cli_tls(addr: &str, args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(args)
        .env("STRONGROOM_ADDR", addr)
        .env_remove("STRONGROOM_TOKEN")
        .env("RUST_BACKTRACE", "0");
    if let Some(t) = token {
        cmd.env("STRONGROOM_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn https_and_client_certificates() {
    let pki = pki();
    let started = TestServer::start(
        &[
            "--dev",
            "--tls-cert",
            &pki.path("server.pem"),
            "--tls-key",
            &pki.path("server.key"),
            "--tls-client-ca",
            &pki.path("client-ca.pem"),
        ],
        &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)],
    );
    let srv = started
        .server
        .unwrap_or_else(|| panic!("TLS server did not start: {}", started.stderr));
    assert!(srv.addr.starts_with("https://127.0.0.1:"), "{}", srv.addr);
    let addr = srv.addr.clone();
    let ca = pki.path("server-ca.pem");

    // Token auth over HTTPS, trusting the server's private CA.
    let run = |args: &[&str]| {
        let mut a = vec!["--ca-cert", ca.as_str()];
        a.extend_from_slice(args);
        let (code, out, err) = cli_tls(&addr, &a, Some(ROOT));
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&["keyring", "create", "pay"]);
    run(&["key", "create", "pay/card"]);
    run(&[
        "principal",
        "create",
        "payments",
        "--role",
        "key-user",
        "--tls-cert",
        &pki.path("client.pem"),
    ]);
    let p: Value =
        serde_json::from_str(&run(&["principal", "get", "payments", "-o", "json"])).unwrap();
    assert_eq!(p["tls_certs"].as_array().unwrap().len(), 1);

    // The registered client certificate alone authenticates as the principal.
    let with_cert = |cert: &str, key: &str, args: &[&str]| {
        let mut a = vec![
            "--ca-cert",
            ca.as_str(),
            "--client-cert",
            cert,
            "--client-key",
            key,
        ];
        a.extend_from_slice(args);
        cli_tls(&addr, &a, None)
    };
    let (client_pem, client_key) = (pki.path("client.pem"), pki.path("client.key"));
    let (code, out, err) = with_cert(
        &client_pem,
        &client_key,
        &[
            "encrypt", "--key", "pay/card", "--b64", "aGk=", "-o", "json",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, _) = with_cert(&client_pem, &client_key, &["token", "lookup", "-o", "json"]);
    assert_eq!(code, 0);
    let me: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(me["principal"], "payments");

    // A valid certificate from the same CA that is not registered: unauthenticated.
    let (code, _, err) = with_cert(
        &pki.path("other.pem"),
        &pki.path("other.key"),
        &["encrypt", "--key", "pay/card", "--b64", "aGk="],
    );
    assert_ne!(code, 0);
    assert!(err.contains("unauthenticated"), "{err}");
    // A self-signed look-alike (same subject and names, not issued by the client CA): the
    // handshake itself fails.
    let (code, _, err) = with_cert(
        &pki.path("forged.pem"),
        &pki.path("forged.key"),
        &["encrypt", "--key", "pay/card", "--b64", "aGk="],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot reach") || err.contains("error"),
        "{err}"
    );
    // Without trusting the server's CA the client refuses the server.
    let (code, _, err) = cli_tls(&addr, &["keyring", "list"], Some(ROOT));
    assert_ne!(code, 0);
    assert!(err.contains("cannot reach"), "{err}");
    // Plain HTTP to the HTTPS port gets nowhere.
    let plain = addr.replace("https://", "http://");
    let (code, _, _) = cli_tls(&plain, &["keyring", "list"], Some(ROOT));
    assert_ne!(code, 0);

    // The audit log says how each principal authenticated.
    let (code, out, _) = {
        let mut a = vec!["--ca-cert", ca.as_str()];
        a.extend_from_slice(&["audit", "query", "--principal", "payments", "-o", "json"]);
        cli_tls(&addr, &a, Some(ROOT))
    };
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["auth_method"] == "mtls"),
        "{v}"
    );
    let _ = json!(null);
}
