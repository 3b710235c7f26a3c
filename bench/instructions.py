"""Instructions per request, counted by valgrind's callgrind: Strongroom against the same
baselines as bench/run.py (the axum hello-world and the bare JSON + base64 + AES-GCM
handler), in the same run.

Wall-clock throughput on a shared 2-core machine moves by a factor of two or three from
one day to the next; instruction counts do not (the same binary and requests count the same
whatever else the machine is doing). Use this to see what a change to the request path
costs or saves, and bench/run.py for what the machine actually serves.

Each server runs under callgrind; after a warm-up its counters are zeroed, a Python client
sends BENCH_REQUESTS requests over 4 keep-alive connections, and the server's instructions
(all of its threads: HTTP, policy, store cache, audit writer) are divided by that number.
The kernel's work (TCP, fdatasync) is not counted. Run through bench/instructions.sh.
Writes target/bench/instructions.md and .json. Never a test.
"""

import base64
import http.client
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared helpers: servers, principal, SigV4 headers)

N = int(os.environ.get("BENCH_REQUESTS", "1000"))
WARMUP = 200


def drive(url, path, n, method="POST", body=None, headers=None, conns=4):
    u = urllib.parse.urlparse(url)
    cs = [http.client.HTTPConnection(u.hostname, u.port, timeout=60) for _ in range(conns)]
    for i in range(n):
        c = cs[i % conns]
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path} answered {r.status}")
    for c in cs:
        c.close()


def control(pid, what):
    subprocess.run(["callgrind_control", what, str(pid)], check=True, capture_output=True)


def total(out_dir):
    """The instruction total of the newest dump in `out_dir`."""
    dumps = sorted(out_dir.glob("cg.out.*"), key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


def measure(proc, out_dir, url, path, **kw):
    drive(url, path, WARMUP, **kw)
    for old in out_dir.glob("cg.out.*"):
        old.unlink()
    control(proc.p.pid, "-z")
    drive(url, path, N, **kw)
    control(proc.p.pid, "-d")
    return total(out_dir) / N


def main():
    run.OUT.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="strongroom-instr-"))
    m = {}

    def callgrind(name):
        d = work / name
        d.mkdir()
        return d, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out"]

    d, wrap = callgrind("hello")
    hello = run.Proc([*wrap, str(run.REL / "strongroom-bench-hello")], wait_line="listening on ")
    url = hello.line.split()[-1]
    try:
        m["hello"] = measure(hello, d, url, "/", method="GET")
        m["hello_aead"] = measure(hello, d, url, "/aead", body=json.dumps({"plaintext": run.PT_256}), headers={"Content-Type": "application/json"})
    finally:
        hello.stop()

    d, wrap = callgrind("strongroom")
    srv, base, _, _ = run.strongroom(wrap=wrap)
    try:
        app_token, app_key = run.workload_principal(base)
        auth = {"Authorization": "Bearer " + app_token, "Content-Type": "application/json"}
        m["encrypt"] = measure(srv, d, base, "/v1/crypto/encrypt", body=json.dumps({"key": "bench/aes", "plaintext": run.PT_256}), headers=auth)
        m["data_key"] = measure(srv, d, base, "/v1/crypto/generate-data-key", body=json.dumps({"key": "bench/aes"}), headers=auth)
        aws_body = json.dumps({"KeyId": "bench/aes", "Plaintext": run.PT_256})
        signed = dict(run.sigv4_headers(base, "Encrypt", aws_body, app_key["access_key_id"], app_key["secret_access_key"]))
        m["aws_encrypt"] = measure(srv, d, base, "/", body=aws_body, headers=signed)
    finally:
        srv.stop()

    rows = [(k, v, v / m["hello"]) for k, v in m.items()]
    lines = [
        f"# Instructions per request (callgrind, {N} requests each, user space of the server only)",
        "",
        "| run | instructions / request | vs hello |",
        "|---|---:|---:|",
        *[f"| {k} | {v:,.0f} | {r:.2f} |" for k, v, r in rows],
    ]
    report = "\n".join(lines) + "\n"
    (run.OUT / "instructions.md").write_text(report)
    (run.OUT / "instructions.json").write_text(json.dumps({"requests": N, "instructions_per_request": m}, indent=2) + "\n")
    print(report)


if __name__ == "__main__":
    main()
