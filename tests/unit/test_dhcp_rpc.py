"""dhcp: the plugin <-> daemon protocol, both ends, on socket pairs (no root, no netns)."""

import json
import socket
import threading

import pytest

from pycni.errors import CNIError
from pycni.ipam.dhcp import rpc
from pycni.ipam.dhcp.daemon import Daemon, parse_flags

CONF = json.dumps({"cniVersion": "1.0.0", "name": "net", "type": "dhcp", "ipam": {"type": "dhcp"}})


def serve_once(path, script):
    """A unix socket at `path` whose one connection runs script(conn)."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got = []

    def run():
        conn, _ = srv.accept()
        try:
            got.append(script(conn))
        finally:
            conn.close()
            srv.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


def read_request(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_call_result(tmp_path):
    path = str(tmp_path / "d.sock")

    def script(conn):
        conn.sendall(b"PYCNI-DHCP/1 30\n")
        req = read_request(conn)
        conn.sendall(b'{"result": {"ips": []}}\n')
        return req
    t, got = serve_once(path, script)
    assert rpc.call(path, {"method": "Allocate", "x": 1}) == {"ips": []}
    t.join(5)
    assert json.loads(got[0]) == {"method": "Allocate", "x": 1}


def test_call_error_keeps_code(tmp_path):
    path = str(tmp_path / "d.sock")

    def script(conn):
        conn.sendall(b"PYCNI-DHCP/1 30\n")
        read_request(conn)
        conn.sendall(b'{"error": {"code": 4, "msg": "bad", "details": "d"}}\n')
    serve_once(path, script)
    with pytest.raises(CNIError) as exc:
        rpc.call(path, {"method": "Allocate"})
    assert (exc.value.code, exc.value.msg, exc.value.details) == (4, "bad", "d")


def test_no_daemon_is_unreachable(tmp_path):
    with pytest.raises(rpc.Unreachable) as exc:
        rpc.call(str(tmp_path / "none.sock"), {"method": "Status"})
    assert exc.value.code == 50
    assert exc.value.msg.startswith(f"error dialing DHCP daemon: dial unix {tmp_path}/none.sock")


@pytest.mark.parametrize("banner", [b"HTTP/1.1 200 OK\r\n", b"PYCNI-DHCP/1 x\n", b""])
def test_a_peer_that_is_not_the_daemon_gets_nothing(tmp_path, banner, monkeypatch):
    monkeypatch.setattr(rpc, "BANNER_TIMEOUT", 0.3)
    path = str(tmp_path / "other.sock")

    def script(conn):
        conn.sendall(banner)
        conn.settimeout(1.0)
        try:
            return conn.recv(4096)
        except OSError:
            return b""
    t, got = serve_once(path, script)
    with pytest.raises(rpc.Unreachable):
        rpc.call(path, {"method": "Allocate"})
    t.join(5)
    assert got == [b""]


def test_daemon_closing_without_answer(tmp_path):
    path = str(tmp_path / "d.sock")

    def script(conn):
        conn.sendall(b"PYCNI-DHCP/1 30\n")
        read_request(conn)
    serve_once(path, script)
    with pytest.raises(CNIError) as exc:
        rpc.call(path, {"method": "Release"})
    assert exc.value.code == 999 and "without an answer" in exc.value.msg


# ---------------------------------------------------------------- daemon side

@pytest.fixture
def daemon(tmp_path):
    return Daemon(parse_flags(["-statedir", str(tmp_path / "state"), "-resendtimeout", "2s"]))


def ask(daemon, request) -> dict:
    a, b = socket.socketpair()
    t = threading.Thread(target=daemon.handle, args=(b,), daemon=True)
    t.start()
    banner = a.recv(64)
    assert banner.startswith(b"PYCNI-DHCP/1 ")
    a.sendall(json.dumps(request).encode() + b"\n")
    reply = read_request(a)
    a.close()
    t.join(5)
    return json.loads(reply)


def test_daemon_state_dir_is_root_only(daemon, tmp_path):
    import os
    assert oct(os.stat(tmp_path / "state").st_mode & 0o777) == "0o700"


def test_daemon_status(daemon):
    assert ask(daemon, {"method": "Status"}) == {"result": {}}


def test_daemon_unknown_method(daemon):
    assert ask(daemon, {"method": "Shell"})["error"]["msg"] == "rpc: can't find method DHCP.Shell"


@pytest.mark.parametrize("req,code,text", [
    ({"containerID": "../x", "ifName": "eth0"}, 4, "invalid characters in containerID"),
    ({"containerID": "c", "ifName": "a/b"}, 4, "interface name contains"),
    ({"containerID": "c", "ifName": "x" * 16}, 4, "too long"),
    ({"containerID": "c", "ifName": "eth0", "netns": "relative/ns"}, 4, "is not absolute"),
    ({"containerID": "c", "ifName": "eth0", "netns": "/etc/passwd"}, 4,
     "is not a network namespace"),
    ({"containerID": "c", "ifName": "eth0", "netns": "/nonexistent/ns"}, 3, "does not exist"),
    ({"containerID": "c", "ifName": "eth0", "netns": "/run/netns/x", "config": "{"}, 6, ""),
])
def test_daemon_refuses_bad_requests(daemon, req, code, text):
    req = {"method": "Allocate", "config": CONF, **req}
    err = ask(daemon, req)["error"]
    assert err["code"] == code and text in err["msg"], err
    assert daemon.tasks == {}


def test_daemon_release_of_an_unknown_lease_succeeds(daemon):
    req = {"method": "Release", "containerID": "c", "ifName": "eth0", "netns": "",
           "config": CONF}
    assert ask(daemon, req) == {"result": {}}


def test_daemon_check_without_lease_fails(daemon):
    req = {"method": "Check", "containerID": "c", "ifName": "eth0",
           "netns": "/proc/self/ns/net", "config": CONF}
    err = ask(daemon, req)["error"]
    assert err["code"] == 4 and "host's own network namespace" in err["msg"]
