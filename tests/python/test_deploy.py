"""The metrics a running server exports, and the dashboards and rules under deploy/ that use
them: promtool checks and unit-tests the rules and lints the exposition, and every metric a
dashboard or rule names must be one the server exports (docs/metrics.md)."""

import datetime
import json
import pathlib
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import ROOT_TOKEN, OpenBao, Server

REPO = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
RULES = DEPLOY / "prometheus" / "strongroom-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "strongroom-rules.test.yml"
NAME = re.compile(r"\bstrongroom_[a-z0-9_]+")


def documented_metrics():
    """The metric names in docs/metrics.md's table."""
    doc = (REPO / "docs" / "metrics.md").read_text()
    names = re.findall(r"^\| `(strongroom_[a-z0-9_]+)` \|", doc, re.M)
    assert len(names) >= 15, names
    return set(names)


def base_name(series):
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series[: -len(suffix)].endswith("_seconds"):
            return series[: -len(suffix)]
    return series


def get(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


def exported(text):
    return {base_name(m.group(0)) for m in re.finditer(r"^(strongroom_[a-z0-9_]+)", text, re.M)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # One real key provider (OpenBao Transit), so the provider metrics exist too.
    bao = OpenBao()
    # A second OpenBao that the traffic below stops, so failover metrics appear.
    flaky = OpenBao()
    d = tmp_path_factory.mktemp("providers")
    (d / "token").write_text(bao.token)
    (d / "providers.toml").write_text(
        f'[providers.bao]\nkind = "vault-transit"\naddress = "{bao.url}"\ntoken_file = "{d / "token"}"\n\n'
        f'[providers.flaky]\nkind = "vault-transit"\naddress = "{flaky.url}"\ntoken_file = "{d / "token"}"\n'
        'timeout = "1s"\ndeadline = "2s"\nretries = 1\nretry_backoff = "10ms"\n'
    )
    for peer in (bao, flaky):
        req = urllib.request.Request(peer.url + "/v1/transit/keys/dk", data=b'{"type":"aes256-gcm96"}', method="POST")
        req.add_header("X-Vault-Token", peer.token)
        urllib.request.urlopen(req).close()
    s = Server(["--metrics-listen", "127.0.0.1:0", "--scheduler-interval", "1s", "--providers", str(d / "providers.toml")])
    s.flaky = flaky
    yield s
    s.stop()
    bao.stop()
    flaky.stop()


def token_for(server, name, roles, rate_limits=None):
    body = {"name": name, "kind": "workload", "roles": roles}
    if rate_limits:
        body["rate_limits"] = rate_limits
    status, out = server.native("POST", "/v1/principals", body)
    assert status == 201, out
    status, out = server.native("POST", f"/v1/principals/{name}/tokens", {"ttl": "1h"})
    assert status == 201, out
    return out["token"]


@pytest.fixture(scope="module")
def scrape(server):
    """Traffic that makes every metric appear, then the metrics listener's exposition."""
    assert server.metrics_url and server.metrics_url.endswith("/metrics"), server.metrics_url
    assert server.native("POST", "/v1/keyrings", {"name": "obs"})[0] == 201
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # `auto` rotates on schedule in 2 seconds; `k` is rotated by hand (which would reset a
    # schedule, hence two keys).
    status, out = server.native(
        "POST",
        "/v1/keyrings/obs/keys",
        {"name": "auto", "purpose": "encrypt-decrypt", "rotation_period": "1d", "next_rotation_time": soon},
    )
    assert status == 201, out
    assert server.native("POST", "/v1/keyrings/obs/keys", {"name": "k", "purpose": "encrypt-decrypt"})[0] == 201
    assert server.native("POST", "/v1/crypto/encrypt", {"key": "obs/k", "plaintext": "eA=="})[0] == 200
    assert server.native("POST", "/v1/keyrings/obs/keys/k/versions", {})[0] in (200, 201)
    assert server.native("POST", "/v1/crypto/encrypt", {"key": "obs/k", "plaintext": "eA=="}, token="srt_wrong")[0] == 401
    # No role and one crypto request a second: refused, then throttled.
    limited = token_for(server, "limited", [], {"crypto": 1})
    codes = {server.native("POST", "/v1/crypto/encrypt", {"key": "obs/k", "plaintext": "eA=="}, token=limited)[0] for _ in range(5)}
    assert codes == {403, 429}, codes
    # A key set over both OpenBaos; one dies: the next decrypt retries it, opens its breaker
    # and fails over to the other.
    status, out = server.native("POST", "/v1/key-sets", {"name": "obs", "members": ["flaky:dk", "bao:dk"]})
    assert status == 201, out
    status, dk = server.native("POST", "/v1/key-sets/obs/generate-data-key", {})
    assert status == 200, dk
    server.flaky.stop()
    status, out = server.native("POST", "/v1/key-sets/obs/decrypt", {"wrapped": dk["wrapped"]})
    assert status == 200 and out["member"] == "bao:dk", out
    # The scheduled rotation and the 15-second inventory make the rest appear.
    want = documented_metrics()
    deadline = time.time() + 40
    while True:
        status, text, ctype = get(server.metrics_url)
        assert status == 200
        missing = want - exported(text)
        if not missing or time.time() > deadline:
            break
        time.sleep(1)
    assert not missing, f"not exported: {sorted(missing)}"
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return text


def test_every_documented_metric_is_exported_and_nothing_else(scrape):
    assert exported(scrape) == documented_metrics()


def test_the_exposition_passes_promtool_lint(scrape):
    r = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_the_exposition_carries_what_the_traffic_did(scrape):
    def value(series):
        m = re.search("^" + re.escape(series) + r" (\S+)$", scrape, re.M)
        assert m, f"{series} not in the exposition"
        return float(m.group(1))

    assert value('strongroom_requests_total{protocol="native",operation="encrypt",outcome="error",code="unauthenticated"}') == 1
    assert value('strongroom_authorization_failures_total{protocol="native",operation="encrypt",reason="unauthenticated"}') == 1
    assert value('strongroom_throttled_requests_total{protocol="native",operation="encrypt"}') >= 1
    assert value('strongroom_rotations_total{trigger="manual",outcome="ok"}') == 1
    assert value('strongroom_rotations_total{trigger="scheduled",outcome="ok"}') == 1
    assert value('strongroom_keys{state="enabled",protection="software"}') == 2
    assert value('strongroom_key_versions{state="enabled"}') == 4
    assert value('strongroom_scheduled_jobs_total{operation="scheduled-rotation",outcome="ok"}') == 1
    assert value("strongroom_scheduler_leader") == 1
    assert value('strongroom_provider_up{provider="bao",kind="vault-transit"}') == 1
    assert value("strongroom_ready") == 1
    assert value("strongroom_sealed") == 0
    assert value('strongroom_audit_writes_total{outcome="error"}') == 0
    # Key names are not labels unless --metrics-per-key.
    assert 'key_ring="obs",key="",operation="encrypt",outcome="ok",code=""' in scrape
    assert 'key="k"' not in scrape
    # No secret reaches the metrics.
    assert ROOT_TOKEN not in scrape and "srt_" not in scrape


def test_dashboards_and_rules_name_only_exported_metrics(scrape):
    have = exported(scrape)
    named = set()
    for path in [*DASHBOARDS, RULES]:
        found = {base_name(n) for n in NAME.findall(path.read_text())}
        assert found, f"{path.name} names no metric"
        unknown = found - have
        assert not unknown, f"{path.name} names metrics the server does not export: {sorted(unknown)}"
        named |= found
    # The dashboards and rules between them watch every metric but build info.
    assert documented_metrics() - named <= {"strongroom_build_info", "strongroom_sealed"}, sorted(documented_metrics() - named)


def test_dashboards_are_grafana_dashboards():
    assert [p.name for p in DASHBOARDS] == ["strongroom-debug.json", "strongroom-executive.json", "strongroom-oncall.json"]
    uids = set()
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        assert d["uid"] not in uids
        uids.add(d["uid"])
        assert d["title"].startswith("Strongroom")
        assert {v["name"] for v in d["templating"]["list"]} >= {"datasource", "job"}
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)) >= 6, path.name
        for p in d["panels"]:
            assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), (path.name, p["title"])
            assert {"x", "y", "w", "h"} <= p["gridPos"].keys()
            for t in p["targets"]:
                # Every query is scoped to the chosen job.
                assert 'job="$job"' in t["expr"], (path.name, p["title"], t["expr"])


def test_rules_pass_promtool_and_their_unit_tests():
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, cwd=RULE_TESTS.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    rules = yaml.safe_load(RULES.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    for a in alerts:
        assert a["labels"]["severity"] in {"page", "ticket", "info"}, a["alert"]
        assert a["annotations"]["summary"], a["alert"]
    paging = {a["alert"] for a in alerts if a["labels"]["severity"] == "page"}
    assert {"StrongroomAvailabilityFastBurn", "StrongroomAuditWriteFailed"} <= paging
    audit = next(a for a in alerts if a["alert"] == "StrongroomAuditWriteFailed")
    assert audit["for"] == "0m", "audit write failures page immediately"
    # Runbook links point at sections that exist.
    ops = (REPO / "docs" / "operations.md").read_text()
    anchors = {"runbook-" + re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^### Runbook: (.+)$", ops, re.M)}
    for a in alerts:
        link = a["annotations"].get("runbook")
        if link:
            assert link.split("#")[1] in anchors, (a["alert"], link, anchors)


def test_metrics_on_the_api_listener_need_read_metrics(server):
    url = server.url + "/metrics"
    assert get(url)[0] == 401
    assert get(url, "srt_wrong")[0] == 401
    nobody = token_for(server, "nobody", [])
    status, body, _ = get(url, nobody)
    assert status == 403 and json.loads(body)["error"]["code"] == "access_denied", body
    auditor = token_for(server, "scraper", ["auditor"])
    status, body, ctype = get(url, auditor)
    assert status == 200 and "strongroom_requests_total" in body and ctype.startswith("text/plain")
    events = [e for e in server.audit(operation="read-metrics")]
    assert {(e.get("principal"), e["outcome"]) for e in events} >= {("nobody", "error"), ("scraper", "ok")}


def test_the_metrics_listener_serves_only_metrics(server):
    base = server.metrics_url.rsplit("/", 1)[0]
    assert get(base + "/v1/sys/health")[0] == 404
    assert get(base + "/metrics", "srt_wrong")[0] == 200


def test_providers_are_listed_with_their_health(server):
    status, body = server.native("GET", "/v1/providers")
    assert status == 200, body
    assert [(p["name"], p["kind"], p["healthy"], p["error"], p["breaker"]) for p in body["items"] if p["name"] != "flaky"] == [
        ("bao", "vault-transit", True, None, "closed"),
        ("software", "software", True, None, "closed"),
    ]
    assert server.native("GET", "/v1/providers", token="srt_wrong")[0] == 401


def test_readiness_and_liveness(server):
    status, body, _ = get(server.url + "/v1/sys/ready")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "store": "ok", "audit": "ok", "policies": "ok", "sealed": False}
    status, body, _ = get(server.url + "/v1/sys/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    # Only GET is public: anything else is refused as unauthenticated, then as not allowed.
    assert server.native("POST", "/v1/sys/ready", {}, token="srt_wrong")[0] == 401
    status, body = server.native("POST", "/v1/sys/ready", {})
    assert status == 405, body
