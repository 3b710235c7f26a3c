"""The Kubernetes KMS v2 plugin through grpcio, as the kube-apiserver uses it: a real
`strongroom serve` with --k8s-kms-socket, and a client generated (grpc_tools.protoc) from the
project's own crates/strongroom-server/proto/k8s_kms_v2.proto."""

import base64
import concurrent.futures
import importlib
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
import tempfile

import grpc
import pytest
from grpc_tools import protoc

from conftest import ROOT_TOKEN, Server

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "crates/strongroom-server/proto"
SEED = bytes(range(32))
# The kube-apiserver's gRPC client names the authority `localhost` on unix sockets; grpcio
# would send the socket path, which HTTP/2 servers (h2) refuse as a malformed :authority.
CHANNEL_OPTIONS = [("grpc.default_authority", "localhost")]


def load_stubs():
    out = tempfile.mkdtemp(prefix="strongroom-k8s-stubs-")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", str(PROTO_DIR / "k8s_kms_v2.proto")])
    assert rc == 0, "grpc_tools.protoc failed"
    sys.path.insert(0, out)
    return importlib.import_module("k8s_kms_v2_pb2"), importlib.import_module("k8s_kms_v2_pb2_grpc")


pb, pb_grpc = load_stubs()


class Plugin:
    """A server with the plugin on, and a gRPC client on its socket."""

    def __init__(self, key="k8s/kek", principal=None):
        self.dir = tempfile.mkdtemp(prefix="strongroom-k8s-")
        self.socket = os.path.join(self.dir, "kms.sock")
        args = ["--k8s-kms-socket", self.socket, "--k8s-kms-key", key]
        if principal:
            args += ["--k8s-kms-principal", principal]
        self.server = Server(args)
        self.channel = grpc.insecure_channel("unix://" + self.socket, options=CHANNEL_OPTIONS)
        self.kms = pb_grpc.KeyManagementServiceStub(self.channel)

    def status(self):
        return self.kms.Status(pb.StatusRequest(), timeout=5)

    def encrypt(self, plaintext=SEED, uid="6b1f0c1e-1d2f-4a5b-9c8d-7e6f5a4b3c2d"):
        return self.kms.Encrypt(pb.EncryptRequest(plaintext=plaintext, uid=uid), timeout=5)

    def decrypt(self, enc, uid="0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f", **change):
        req = dict(ciphertext=enc.ciphertext, key_id=enc.key_id, annotations=dict(enc.annotations), uid=uid)
        req.update(change)
        return self.kms.Decrypt(pb.DecryptRequest(**req), timeout=5).plaintext

    def native(self, *a, **kw):
        return self.server.native(*a, **kw)

    def stop(self):
        self.channel.close()
        self.server.stop()


@pytest.fixture(scope="module")
def plugin():
    p = Plugin()
    yield p
    p.stop()


def code_of(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code()


def make_key(p, ring="k8s", name="kek"):
    s, _ = p.native("POST", "/v1/keyrings", {"name": ring})
    assert s in (201, 409)
    s, body = p.native("POST", f"/v1/keyrings/{ring}/keys", {"name": name})
    assert s == 201, body
    return body["id"]


def test_status_tells_the_truth_and_tracks_rotation(plugin):
    # Before the key exists the plugin answers, but is not healthy.
    st = plugin.status()
    assert (st.version, st.key_id) == ("v2", "") and st.healthz != "ok"
    assert "not_found" in st.healthz

    key_id = make_key(plugin)
    st = plugin.status()
    assert (st.version, st.healthz, st.key_id) == ("v2", "ok", f"strongroom:{key_id}:1")
    enc = plugin.encrypt()
    assert enc.key_id == st.key_id
    assert 0 < len(enc.ciphertext) <= 1024 and len(enc.key_id) <= 1024
    assert dict(enc.annotations) == {"format.kms.strongroom.dev": b"ciphertext-v1", "key-version.kms.strongroom.dev": b"1"}
    assert plugin.decrypt(enc) == SEED

    # Rotating the key changes key_id (the API server's signal to make a new seed); seeds
    # wrapped before the rotation still unwrap.
    assert plugin.native("POST", "/v1/keyrings/k8s/keys/kek/versions", {})[0] == 201
    st2 = plugin.status()
    assert (st2.healthz, st2.key_id) == ("ok", f"strongroom:{key_id}:2")
    enc2 = plugin.encrypt()
    assert enc2.key_id == st2.key_id and enc2.annotations["key-version.kms.strongroom.dev"] == b"2"
    assert plugin.decrypt(enc) == SEED and plugin.decrypt(enc2) == SEED

    # Same seed, different wrapping each time.
    assert plugin.encrypt().ciphertext != enc2.ciphertext

    # Disabled key: unhealthy, Encrypt and Decrypt refused; enabled again: healthy.
    assert plugin.native("POST", "/v1/keyrings/k8s/keys/kek/disable")[0] == 200
    st3 = plugin.status()
    assert st3.healthz != "ok" and "invalid_state" in st3.healthz
    assert code_of(lambda: plugin.encrypt()) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: plugin.decrypt(enc2)) == grpc.StatusCode.FAILED_PRECONDITION
    assert plugin.native("POST", "/v1/keyrings/k8s/keys/kek/enable")[0] == 200
    assert plugin.status().healthz == "ok"

    # A version disabled: its seeds no longer unwrap, the others still do.
    assert plugin.native("POST", "/v1/keyrings/k8s/keys/kek/versions/1/disable")[0] == 200
    assert code_of(lambda: plugin.decrypt(enc)) == grpc.StatusCode.FAILED_PRECONDITION
    assert plugin.decrypt(enc2) == SEED
    assert plugin.native("POST", "/v1/keyrings/k8s/keys/kek/versions/1/enable")[0] == 200


def test_the_uid_and_principal_are_audited(plugin):
    enc = plugin.encrypt(uid="aaaabbbb-cccc-dddd-eeee-ffff00001111")
    plugin.decrypt(enc, uid="11110000-ffff-eeee-dddd-ccccbbbbaaaa")
    events = {e.get("client_request_id"): e for e in plugin.server.audit() if e["protocol"] == "k8s-kms"}
    e = events["aaaabbbb-cccc-dddd-eeee-ffff00001111"]
    assert (e["operation"], e["outcome"], e["principal"], e["auth_method"]) == ("encrypt", "ok", "root", "unix-socket")
    assert events["11110000-ffff-eeee-dddd-ccccbbbbaaaa"]["operation"] == "decrypt"


def test_bad_requests_are_refused_and_audited(plugin):
    make_key(plugin, "bad", "k")
    enc = plugin.encrypt()
    bad = grpc.StatusCode.INVALID_ARGUMENT
    tampered = bytearray(enc.ciphertext)
    tampered[-1] ^= 1
    other_version = enc.key_id.rsplit(":", 1)[0] + ":99"
    cases = {
        "tampered ciphertext": lambda: plugin.decrypt(enc, ciphertext=bytes(tampered)),
        "not a ciphertext": lambda: plugin.decrypt(enc, ciphertext=b"garbage"),
        "empty ciphertext": lambda: plugin.decrypt(enc, ciphertext=b""),
        "oversized ciphertext": lambda: plugin.decrypt(enc, ciphertext=enc.ciphertext + bytes(1025)),
        "key_id of another version": lambda: plugin.decrypt(enc, key_id=other_version),
        "key_id not ours": lambda: plugin.decrypt(enc, key_id="projects/p/locations/l/keyRings/r/cryptoKeys/k"),
        "missing annotation": lambda: plugin.decrypt(enc, annotations={"format.kms.strongroom.dev": b"ciphertext-v1"}),
        "extra annotation": lambda: plugin.decrypt(enc, annotations={**dict(enc.annotations), "x.example.com": b"1"}),
        "wrong annotation value": lambda: plugin.decrypt(enc, annotations={**dict(enc.annotations), "key-version.kms.strongroom.dev": b"7"}),
        "empty plaintext": lambda: plugin.encrypt(plaintext=b""),
        "oversized plaintext": lambda: plugin.encrypt(plaintext=bytes(513)),
        "uid with a line break": lambda: plugin.encrypt(uid="a\nb"),
        "uid too long": lambda: plugin.encrypt(uid="u" * 129),
    }
    before = len([e for e in plugin.server.audit(operation="rejected-request") if e["protocol"] == "k8s-kms"])
    for name, call in cases.items():
        got = code_of(call)
        # The tampered ciphertext reaches the key and fails authentication there.
        assert got == bad, (name, got)
    after = [e for e in plugin.server.audit(operation="rejected-request") if e["protocol"] == "k8s-kms"]
    # Every refusal before KeyService is audited; the tampered one is a decrypt error event.
    assert len(after) - before == len(cases) - 1
    assert {e["target"] for e in after} == {"gRPC Decrypt", "gRPC Encrypt"}
    # A message over the plugin's 64 KiB limit is refused by the gRPC layer (tonic answers
    # OUT_OF_RANGE), before the plugin sees it; the server lives on.
    huge = {"a.example.com": bytes(70 * 1024)}
    assert code_of(lambda: plugin.decrypt(enc, annotations=huge)) == grpc.StatusCode.OUT_OF_RANGE
    assert plugin.decrypt(enc) == SEED


def test_a_burst_of_concurrent_encrypts(plugin):
    make_key(plugin, "burst", "k")
    seeds = [os.urandom(32) for _ in range(64)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        encs = list(pool.map(lambda s: plugin.encrypt(plaintext=s), seeds))
        back = list(pool.map(plugin.decrypt, encs))
    assert back == seeds
    assert len({e.ciphertext for e in encs}) == 64 and len({e.key_id for e in encs}) == 1


def test_the_socket_is_private_and_not_shared():
    p = Plugin()
    try:
        mode = stat.S_IMODE(os.stat(p.socket).st_mode)
        assert mode == 0o600
        # A second server on the same live socket refuses to start.
        with pytest.raises(RuntimeError, match="another server is listening"):
            Server(["--k8s-kms-socket", p.socket, "--k8s-kms-key", "k8s/kek"])
    finally:
        p.stop()
    # A clean stop removes the socket.
    assert not os.path.exists(p.socket)


def test_a_stale_socket_is_replaced():
    p = Plugin()
    p.server.proc.send_signal(signal.SIGKILL)
    p.server.proc.wait()
    assert os.path.exists(p.socket)  # left behind by the killed server
    with pytest.raises(ConnectionRefusedError):
        s = socket.socket(socket.AF_UNIX)
        s.connect(p.socket)
    q = Server(["--k8s-kms-socket", p.socket, "--k8s-kms-key", "k8s/kek"])
    try:
        ch = grpc.insecure_channel("unix://" + p.socket, options=CHANNEL_OPTIONS)
        st = pb_grpc.KeyManagementServiceStub(ch).Status(pb.StatusRequest(), timeout=5)
        assert st.version == "v2"
        ch.close()
    finally:
        q.stop()


def test_the_plugin_acts_as_its_principal_under_policy():
    p = Plugin(key="k8s/kek", principal="kube-apiserver")
    try:
        make_key(p)
        # The principal does not exist yet: unauthenticated, and Status says so.
        assert code_of(lambda: p.encrypt()) == grpc.StatusCode.UNAUTHENTICATED
        assert "unauthenticated" in p.status().healthz
        s, body = p.native("POST", "/v1/principals", {"name": "kube-apiserver", "kind": "workload", "roles": []})
        assert s == 201, body
        # Exists, but no policy lets it use the key.
        assert code_of(lambda: p.encrypt()) == grpc.StatusCode.PERMISSION_DENIED
        assert p.native("PATCH", "/v1/principals/kube-apiserver", {"roles": ["key-user"]})[0] == 200
        enc = p.encrypt()
        assert p.decrypt(enc) == SEED and p.status().healthz == "ok"
        # Disabled: locked out at once.
        assert p.native("PATCH", "/v1/principals/kube-apiserver", {"disabled": True})[0] == 200
        assert code_of(lambda: p.decrypt(enc)) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        p.stop()


def test_the_plugin_needs_a_principal_outside_dev_mode():
    binary = os.environ.get("STRONGROOM_BIN", "target/debug/strongroom")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(
            [binary, "serve", "--data-dir", d, "--listen", "127.0.0.1:0", "--k8s-kms-socket", os.path.join(d, "s"), "--k8s-kms-key", "a/b"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert r.returncode != 0 and "--k8s-kms-principal" in r.stderr


def test_the_seed_never_reaches_the_audit_log(plugin):
    make_key(plugin, "canary", "k")
    canary = b"CANARY-SEED-0123456789-abcdefghij"
    enc = plugin.encrypt(plaintext=canary)
    assert plugin.decrypt(enc) == canary
    text = str(plugin.server.audit())
    for form in (canary.decode(), base64.b64encode(canary).decode(), canary.hex()):
        assert form not in text
    assert ROOT_TOKEN not in text
