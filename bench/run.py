"""Strongroom's benchmark, with its baselines measured in the same run on the same machine.

Run through bench/run.sh (which builds the release binaries, installs wrk and prepares the
Python venv). Measures, with wrk as the load generator (a Python client cannot drive a fast
server):

- the ceiling: an axum hello-world (bench/hello), and a handler doing only JSON + base64 +
  AES-256-GCM with no authentication, store, policy or audit, and the same handler making
  one line durable (group-committed fdatasync) before it answers;
- Strongroom: health, native Encrypt and GenerateDataKey (256 B, bearer token, policy,
  store and fail-closed audit all on), AWS-API Encrypt signed with SigV4;
- moto's server doing the same AWS Encrypt;
- latency: single-client p50 against the hello-world's, and p99 at half of peak load
  (strongroom bench --rate);
- crypto: criterion (raw aws-lc-rs AES-256-GCM against Strongroom's ciphertext v1) and
  `openssl speed -evp aes-256-gcm`;
- idle RSS with 100k keys, and cold start to ready (empty and with those keys).

Writes target/bench/report.md and report.json, and prints the table. Never a test.
"""

import contextlib
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "target" / "bench"
REL = ROOT / "target" / "release"
DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
KEYS = int(os.environ.get("BENCH_KEYS", "100000"))
TOKEN = "bench-root-token"
AKID = "AKIDBENCHSTRONGROOM1"
SECRET = "bench/secret/0123456789abcdefghijKLMNOPQRST"
REGION = "us-east-1"
PT_256 = "Wl" * 170 + "Wg=="  # 256 bytes of 0x5a, base64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60, want=200):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == want:
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer {want}")


def call(base, method, path, body=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()


class Proc:
    def __init__(self, args, env=None, wait_line=None):
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e, text=True)
        self.line = None
        self.lines = []
        if wait_line:
            for line in self.p.stdout:
                self.lines.append(line.strip())
                if line.startswith(wait_line):
                    self.line = line.strip()
                    break
            else:
                raise RuntimeError(f"{args[0]} exited before printing {wait_line!r}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()


def wrk(url, connections=CONNECTIONS, threads=THREADS, duration=DURATION, method="GET", body=None, headers=()):
    env = dict(os.environ, WRK_METHOD=method, WRK_BODY=body or "", WRK_HEADERS="\n".join(f"{k}: {v}" for k, v in headers))
    if body is None:
        env.pop("WRK_BODY")
    out = subprocess.run(
        ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", duration, "--latency", "-s", str(ROOT / "bench/wrk/request.lua"), url],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    return parse_wrk(out)


def ms(value):
    m = re.match(r"([\d.]+)(us|ms|s)$", value)
    n = float(m.group(1))
    return {"us": n / 1000, "ms": n, "s": n * 1000}[m.group(2)]


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "errors": errors}


def sigv4_headers(endpoint, target, body, akid=AKID, secret=SECRET):
    """Headers of one SigV4-signed AWS KMS request (valid for 15 minutes, replayed by wrk)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    req = botocore.awsrequest.AWSRequest(
        method="POST", url=endpoint + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(akid, secret), "kms", REGION).add_auth(req)
    return [(k, v) for k, v in req.headers.items()]


def criterion():
    subprocess.run(
        ["cargo", "bench", "-p", "strongroom-crypto", "--bench", "crypto", "--", "--warm-up-time", "1", "--measurement-time", "3", "--noplot"],
        cwd=ROOT, check=True, capture_output=True,
    )
    out = {}
    base = ROOT / "target" / "criterion"
    for est in base.glob("*/*/*/new/estimates.json"):
        group, name, size = est.parts[-5], est.parts[-4], est.parts[-3]
        ns = json.loads(est.read_text())["mean"]["point_estimate"]
        out[f"{group}/{name}/{size}"] = {"ns": ns, "gb_s": int(size) / ns if size.isdigit() else None}
    for est in base.glob("root-seal/*/new/estimates.json"):
        out[f"root-seal/{est.parts[-3]}"] = {"ns": json.loads(est.read_text())["mean"]["point_estimate"]}
    return out


def openssl_speed():
    out = subprocess.run(["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", "16384", "-seconds", "3"], capture_output=True, text=True).stdout
    m = re.search(r"^aes-256-gcm\s+([\d.]+)k", out, re.M | re.I)
    return float(m.group(1)) * 1000 / 1e9 if m else None  # GB/s


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def strongroom(data_dir=None, extra=(), wrap=()):
    """A release server (dev mode, or on `data_dir`), run under `wrap` (a command prefix such
    as valgrind's) if given; returns it, its URL, the time from spawn to ready in ms, and the
    root token it printed on a first start (else None)."""
    port = free_port()
    args = [*wrap, str(REL / "strongroom"), "serve", "--listen", f"127.0.0.1:{port}", "--rate-limit", "crypto=0,read=0,write=0,keygen=0", *extra]
    env = {"STRONGROOM_LOG": "warn", "STRONGROOM_DEV_AWS_ACCESS_KEY_ID": AKID, "STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY": SECRET, "STRONGROOM_DEV_ROOT_TOKEN": TOKEN}
    if data_dir is None:
        args.append("--dev")
    else:
        args += ["--data-dir", str(data_dir)]
    t0 = time.perf_counter()
    p = Proc(args, env, wait_line="strongroom listening on ")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/v1/sys/ready", timeout=120 if wrap else 60)
    ready_ms = (time.perf_counter() - t0) * 1000
    token = next((l.split()[-1] for l in p.lines if l.startswith("Root token: ")), None)
    return p, base, ready_ms, token


@contextlib.contextmanager
def hello_server():
    """The baselines' server, as (its process, its URL); stopped, and its durable log
    removed, on leaving. The log is made where `strongroom serve --dev` keeps its audit log
    (the system's temporary directory), so both sync to the same filesystem."""
    log_dir = tempfile.mkdtemp(prefix="strongroom-bench-hello-")
    try:
        hello = Proc([str(REL / "strongroom-bench-hello"), "127.0.0.1:0", os.path.join(log_dir, "durable.log")], wait_line="listening on ")
        try:
            yield hello, hello.line.split()[-1]
        finally:
            hello.stop()
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


def workload_principal(base):
    """Makes the benchmark's keys (ring `bench`: `aes`, `ec`, `mac`) and its workload
    principal; returns the principal's token and access key pair."""
    call(base, "POST", "/v1/keyrings", {"name": "bench"})
    call(base, "POST", "/v1/keyrings/bench/keys", {"name": "aes"})
    # The other keys `strongroom bench` uses, made here: the workload may not make keys.
    call(base, "POST", "/v1/keyrings/bench/keys", {"name": "ec", "algorithm": "ecdsa-p256-sha256"})
    call(base, "POST", "/v1/keyrings/bench/keys", {"name": "mac", "purpose": "mac"})
    # A workload principal with the shipped key-user role, as an application would be:
    # every request is authorised by the Cedar policies (root's requests skip them). Its
    # crypto quota is off (the default is 1000/s per principal): a high-volume service's would be.
    call(base, "POST", "/v1/principals", {"name": "bench-app", "kind": "workload", "roles": ["key-user"], "rate_limits": {"crypto": 0}})
    app_token = call(base, "POST", "/v1/principals/bench-app/tokens", {"ttl": "24h"})["token"]
    app_key = call(base, "POST", "/v1/principals/bench-app/access-keys", {})
    return app_token, app_key


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": DURATION, "connections": CONNECTIONS, "threads": THREADS, "cores": os.cpu_count()}
    m = {}

    with hello_server() as (_, hello_url):
        m["hello"] = wrk(hello_url + "/")
        m["hello_c1"] = wrk(hello_url + "/", connections=1, threads=1)
        aead = json.dumps({"plaintext": PT_256})
        m["hello_aead"] = wrk(hello_url + "/aead", method="POST", body=aead, headers=[("Content-Type", "application/json")])
        m["hello_aead_durable"] = wrk(hello_url + "/aead-durable", method="POST", body=aead, headers=[("Content-Type", "application/json")])

    srv, base, _, _ = strongroom()
    try:
        app_token, app_key = workload_principal(base)
        auth = [("Authorization", "Bearer " + app_token), ("Content-Type", "application/json")]
        enc = json.dumps({"key": "bench/aes", "plaintext": PT_256})
        m["health"] = wrk(base + "/v1/sys/health")
        m["encrypt"] = wrk(base + "/v1/crypto/encrypt", method="POST", body=enc, headers=auth)
        m["encrypt_c1"] = wrk(base + "/v1/crypto/encrypt", connections=1, threads=1, method="POST", body=enc, headers=auth)
        m["data_key"] = wrk(base + "/v1/crypto/generate-data-key", method="POST", body=json.dumps({"key": "bench/aes"}), headers=auth)
        aws_body = json.dumps({"KeyId": "bench/aes", "Plaintext": PT_256})
        m["aws_encrypt"] = wrk(base + "/", method="POST", body=aws_body, headers=sigv4_headers(base, "Encrypt", aws_body, app_key["access_key_id"], app_key["secret_access_key"]))
        # Latency at half of the peak, paced (strongroom bench --rate). As many clients as
        # wrk's connections: each sends on its own schedule, one request at a time, so too
        # few of them cannot offer the rate once a request takes longer than their interval.
        half = max(1.0, m["encrypt"]["rps"] / 2)
        out = subprocess.run(
            [str(REL / "strongroom"), "bench", "--ops", "encrypt", "--concurrency", str(CONNECTIONS), "--duration", DURATION, "--rate", str(half), "-o", "json"],
            capture_output=True, text=True, check=True, env=dict(os.environ, STRONGROOM_ADDR=base, STRONGROOM_TOKEN=app_token),
        ).stdout
        r = next(x for x in json.loads(out)["results"] if x["op"] == "encrypt")
        m["encrypt_half_peak"] = {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "errors": r["errors"], "offered_rps": half}
        # Envelopes of 4 KiB from the SDK, without and with its data-key cache (5 min,
        # 1000 messages or 1 GiB per data key).
        out = subprocess.run(
            [str(REL / "examples" / "envelope_workload"), base, "bench/aes", os.environ.get("BENCH_ENVELOPES", "40000"), "4096", "8"],
            capture_output=True, text=True, check=True, env=dict(os.environ, STRONGROOM_TOKEN=app_token),
        ).stdout
        m["envelopes"] = json.loads(out.strip().splitlines()[-1])
    finally:
        srv.stop()

    moto_bin = pathlib.Path(sys.executable).parent / "moto_server"
    if moto_bin.exists():
        port = free_port()
        moto = Proc([str(moto_bin), "-p", str(port)])
        try:
            moto_url = f"http://127.0.0.1:{port}"
            wait_http(moto_url + "/moto-api/", timeout=60)
            import boto3

            kms = boto3.client("kms", endpoint_url=moto_url, region_name=REGION, aws_access_key_id=AKID, aws_secret_access_key=SECRET)
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            body = json.dumps({"KeyId": key_id, "Plaintext": PT_256})
            m["moto_encrypt"] = wrk(moto_url + "/", connections=8, method="POST", body=body, headers=sigv4_headers(moto_url, "Encrypt", body))
        finally:
            moto.stop()

    m["crypto"] = criterion()
    m["openssl_gb_s"] = openssl_speed()

    # Memory and start time with many keys.
    data = pathlib.Path(tempfile.mkdtemp(prefix="strongroom-bench-", dir=OUT))
    try:
        srv, _, m["first_start_ms"], _ = strongroom(data / "empty")  # initialises the data dir
        srv.stop()
        srv, _, m["cold_start_empty_ms"], _ = strongroom(data / "empty")
        srv.stop()
        srv, base, _, token = strongroom(data / "keys")
        call(base, "POST", "/v1/keyrings", {"name": "rss"}, token=token)
        subprocess.run(
            ["wrk", "-t", "2", "-c", "16", "-d", os.environ.get("BENCH_KEYGEN_DURATION", "120s"), "-s", str(ROOT / "bench/wrk/create-keys.lua"), base],
            check=True, capture_output=True, env=dict(os.environ, WRK_KEYS=str(KEYS), WRK_THREADS="2", WRK_RING="rss", WRK_TOKEN=token),
        )
        srv.stop()
        srv, base, m["cold_start_keys_ms"], _ = strongroom(data / "keys")
        time.sleep(20)  # one inventory tick, then idle
        metrics = call(base, "GET", "/metrics", token=token)
        m["keys_in_store"] = sum(float(v) for v in re.findall(r'^strongroom_keys\{[^}]*\} (\S+)$', metrics, re.M))
        m["idle_rss_mib"] = rss_kib(srv.p.pid) / 1024
        srv.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)

    results["measurements"] = m
    rows = targets(m)
    results["targets"] = rows
    (OUT / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    report = render(results, rows)
    (OUT / "report.md").write_text(report)
    print(report)


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(m):
    c = m["crypto"]
    rows = [
        ("native Encrypt 256 B vs hello-world rps", ratio(m["encrypt"]["rps"], m["hello"]["rps"]), ">= 0.45"),
        ("AWS-API (SigV4) Encrypt vs hello-world rps", ratio(m["aws_encrypt"]["rps"], m["hello"]["rps"]), ">= 0.45"),
        ("GenerateDataKey vs Encrypt rps", ratio(m["data_key"]["rps"], m["encrypt"]["rps"]), ">= 0.8"),
        ("AWS Encrypt vs moto's", ratio(m["aws_encrypt"]["rps"], m.get("moto_encrypt", {}).get("rps")), ">= 100"),
        ("single-client Encrypt p50 vs hello-world p50", ratio(m["encrypt_c1"]["p50_ms"], m["hello_c1"]["p50_ms"]), "<= 3"),
        ("Encrypt p99 at half of peak (ms)", m["encrypt_half_peak"]["p99_ms"], "<= 2"),
        # The row above means something only if the half-peak load was actually offered.
        ("half-peak Encrypt rate achieved vs offered", ratio(m["encrypt_half_peak"]["rps"], m["encrypt_half_peak"]["offered_rps"]), ">= 0.95"),
        # The SDK's envelope encrypt of a message in memory (envelope::encrypt_to_vec); the
        # streaming form (files, the CLI) copies each chunk once more, in and out.
        ("envelope v1 encrypt (in memory, the SDK's) vs raw AES-256-GCM, 1 MiB, one core", ratio(c.get("aes-256-gcm/envelope-v1-encrypt-in-memory/1048576", {}).get("gb_s"), c.get("aes-256-gcm/raw-seal/1048576", {}).get("gb_s")), ">= 0.8"),
        ("envelope v1 encrypt (streaming) vs raw AES-256-GCM, 1 MiB, one core", ratio(c.get("aes-256-gcm/envelope-v1-encrypt/1048576", {}).get("gb_s"), c.get("aes-256-gcm/raw-seal/1048576", {}).get("gb_s")), "-"),
        ("envelope v1 decrypt vs openssl speed aes-256-gcm, one core", ratio(c.get("aes-256-gcm/envelope-v1-decrypt/1048576", {}).get("gb_s"), m["openssl_gb_s"]), ">= 0.8"),
        ("SDK envelopes/s with the data-key cache vs without (4 KiB)", ratio(m["envelopes"]["cached_per_s"], m["envelopes"]["uncached_per_s"]), ">= 1"),
        ("data-key cache hit rate, synthetic workload (1000 messages per data key)", m["envelopes"]["hit_rate"], ">= 0.99"),
        (f"idle RSS with {int(m['keys_in_store'])} keys (MiB)", m["idle_rss_mib"], "<= 64"),
        ("cold start to ready, empty (ms)", m["cold_start_empty_ms"], "<= 200"),
        (f"cold start to ready, {int(m['keys_in_store'])} keys (ms)", m["cold_start_keys_ms"], "<= 200"),
        # No target: Encrypt against a baseline that also makes one line durable per request.
        ("native Encrypt vs the durable AEAD baseline rps", ratio(m["encrypt"]["rps"], m.get("hello_aead_durable", {}).get("rps")), "-"),
        ("durable AEAD baseline vs hello-world rps", ratio(m.get("hello_aead_durable", {}).get("rps"), m["hello"]["rps"]), "-"),
    ]
    out = []
    for name, value, goal in rows:
        if goal == "-":
            met = None
        else:
            op, limit = goal.split()[0], float(goal.split()[1])
            met = None if value is None else (value >= limit if op == ">=" else value <= limit)
        out.append({"measure": name, "value": value, "target": goal, "met": met})
    return out


def fmt(v, digits=3):
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def render(results, rows):
    m = results["measurements"]
    lines = [
        f"# Strongroom benchmark, {results['date']}",
        "",
        f"{results['cores']} cores; wrk with {results['threads']} threads and {results['connections']} connections, {results['duration']} per run; server and load generator on the same machine.",
        "",
        "| run | rps | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for k in ["hello", "hello_c1", "hello_aead", "hello_aead_durable", "health", "encrypt", "encrypt_c1", "data_key", "aws_encrypt", "encrypt_half_peak", "moto_encrypt"]:
        if k in m:
            r = m[k]
            lines.append(f"| {k} | {r['rps']:.0f} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} |")
    lines += ["", "| crypto (one core) | GB/s | ns/op |", "|---|---:|---:|"]
    for k, v in sorted(m["crypto"].items()):
        lines.append(f"| {k} | {fmt(v.get('gb_s'))} | {v['ns']:.0f} |")
    lines.append(f"| openssl speed -evp aes-256-gcm, 16 KiB | {fmt(m['openssl_gb_s'])} | |")
    if "envelopes" in m:
        e = m["envelopes"]
        lines += ["", "| SDK envelopes, 4 KiB, 8 workers | per second | data keys made | hit rate |", "|---|---:|---:|---:|",
                  f"| without the cache | {e['uncached_per_s']:.0f} | | |",
                  f"| with the cache | {e['cached_per_s']:.0f} | {e['data_keys_made']} | {fmt(e['hit_rate'])} |"]
    lines += ["", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(f"| {r['measure']} | {fmt(r['value'])} | {r['target']} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
