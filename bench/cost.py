"""CPU per request on the hardware: how much of the machine each request takes, and how many
context switches, for the hello-world, the bare AES handler (with and without one durable
line per request), Strongroom's health check and native Encrypt, measured in the same minute.

Instruction counts (bench/instructions.py) see only user space; this sees the kernel too
(loopback TCP, wake-ups, `fdatasync`), which is where most of the difference between
Strongroom and the hello-world lies. For each run, wrk drives the server for 8 s; after
1.5 s `perf stat` reads the server's task-clock and context switches for 5 s while
/proc/stat gives the whole machine's busy time. Reports, per request: the server's CPU µs,
the machine's (server, wrk and kernel), and the server's context switches.

BENCH_COMPARE=/path/to/other/strongroom adds that binary; BENCH_ROUNDS alternates the two
(wall clock on a shared machine drifts within minutes). Run through bench/cost.sh. Writes
target/bench/cost.md. Never a test.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared helpers: servers, principal, wrk output)

SECONDS = 5


def busy_ticks():
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def measure(pid, url, method="GET", body=None, headers=()):
    env = dict(os.environ, WRK_METHOD=method, WRK_HEADERS="\n".join(f"{k}: {v}" for k, v in headers))
    if body is not None:
        env["WRK_BODY"] = body
    load = subprocess.Popen(
        ["wrk", "-t", str(run.THREADS), "-c", str(run.CONNECTIONS), "-d", f"{SECONDS + 3}s", "--latency", "-s", str(run.ROOT / "bench/wrk/request.lua"), url],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    time.sleep(1.5)
    busy0, all0 = busy_ticks()
    stat = subprocess.run(
        ["perf", "stat", "-x,", "-e", "task-clock,context-switches", "-p", str(pid), "--", "sleep", str(SECONDS)],
        capture_output=True, text=True, check=True,
    ).stderr
    busy1, all1 = busy_ticks()
    out = load.communicate()[0]
    r = run.parse_wrk(out)
    if r["errors"]:
        raise RuntimeError(f"{url}: {r['errors']} failed requests")
    task_ms = float(re.search(r"^([\d.]+),msec,task-clock", stat, re.M).group(1))
    switches = float(re.search(r"^(\d+),,context-switches", stat, re.M).group(1))
    share = (busy1 - busy0) / max(1, all1 - all0)
    requests = r["rps"] * SECONDS
    return {
        "rps": r["rps"],
        "server_us": task_ms * 1000 / requests,
        "machine_us": share * os.cpu_count() * SECONDS * 1e6 / requests,
        "switches": switches / requests,
    }


def strongroom_runs(binary):
    run.REL = pathlib.Path(binary).parent
    srv, base, _, _ = run.strongroom()
    try:
        token, _ = run.workload_principal(base)
        auth = [("Authorization", "Bearer " + token), ("Content-Type", "application/json")]
        return {
            "health": measure(srv.p.pid, base + "/v1/sys/health"),
            "encrypt": measure(srv.p.pid, base + "/v1/crypto/encrypt", "POST", json.dumps({"key": "bench/aes", "plaintext": run.PT_256}), auth),
        }
    finally:
        srv.stop()


def main():
    binaries = [str(run.REL / "strongroom")]
    if os.environ.get("BENCH_COMPARE"):
        binaries.append(os.environ["BENCH_COMPARE"])
    rows = []
    with run.hello_server() as (hello, url):
        rows.append(("hello", measure(hello.p.pid, url + "/")))
        aead = json.dumps({"plaintext": run.PT_256})
        rows.append(("hello_aead", measure(hello.p.pid, url + "/aead", "POST", aead, [("Content-Type", "application/json")])))
        rows.append(("hello_aead_durable", measure(hello.p.pid, url + "/aead-durable", "POST", aead, [("Content-Type", "application/json")])))
    for rnd in range(int(os.environ.get("BENCH_ROUNDS", "1"))):
        for i, b in enumerate(binaries):
            label = "" if len(binaries) == 1 else (" (this build)" if i == 0 else " (compared)")
            for name, m in strongroom_runs(b).items():
                rows.append((f"{name}{label}, round {rnd + 1}", m))
    lines = [
        f"# CPU per request ({os.cpu_count()} cores, wrk {run.THREADS} threads x {run.CONNECTIONS} connections, {SECONDS} s counted)",
        "",
        "| run | rps | server µs / request | machine µs / request | server context switches / request |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {m['rps']:.0f} | {m['server_us']:.1f} | {m['machine_us']:.1f} | {m['switches']:.2f} |" for n, m in rows],
    ]
    report = "\n".join(lines) + "\n"
    run.OUT.mkdir(parents=True, exist_ok=True)
    (run.OUT / "cost.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
