"""The firewalld backend without root or a daemon: zone names, the D-Bus
client (addresses, marshalling, the connection against a scripted peer
over a socketpair), the backend's decisions against a fake bus, and what
a firewalld path loads."""

import json
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest

import pycni
from pycni import dbus
from pycni.errors import CNIError
from pycni.plugins.firewall import backend
from pycni.plugins.firewall.config import (ContainerIP, FirewallConf, parse_config,
                                           zone_problem)


def conf(**keys) -> dict:
    return {"cniVersion": "1.0.0", "name": "n", "type": "firewall", **keys}


# ------------------------------------------------------------ config

@pytest.mark.parametrize("zone", ["trusted", "public", "my_zone-1", "a" * 17, "a" * 17 + "/b",
                                  "zone/sub", "zöne"])
def test_zone_names_firewalld_accepts(zone):
    assert zone_problem(zone) == ""
    assert parse_config(conf(backend="firewalld", firewalldZone=zone)).zone == zone


@pytest.mark.parametrize("zone, text", [
    ("a" * 18, "18 characters, firewalld allows at most 17"),
    ("a b", '" " is not allowed'),
    ("a\nb", '"\n" is not allowed'),
    ("a\u0000", '"\u0000" is not allowed'),
    ("x;y", '";" is not allowed'),
    ("/x", 'starts or ends with "/"'),
    ("x/", 'starts or ends with "/"'),
    ("a/b/c", 'more than one "/"'),
    ("a.b", '"." is not allowed'),
])
def test_zone_names_firewalld_refuses_are_refused_with_code_7(zone, text):
    assert text in zone_problem(zone)
    with pytest.raises(CNIError) as e:
        parse_config(conf(backend="firewalld", firewalldZone=zone))
    assert e.value.code == 7 and "invalid firewalldZone" in e.value.msg and text in e.value.msg


def test_zone_is_only_checked_for_the_firewalld_backend():
    """The reference ignores firewalldZone for iptables: so do we."""
    assert parse_config(conf(backend="iptables", firewalldZone="a b")).backend == "iptables"
    assert parse_config(conf(firewalldZone="a b"), lambda: "nftables").backend == "nftables"
    with pytest.raises(CNIError):
        parse_config(conf(firewalldZone="a b"), lambda: "firewalld")
    c = parse_config(conf(backend="firewalld", firewalldZone="a b"), check_zone=False)
    assert c.zone == "a b"


def test_default_zone_is_trusted():
    assert FirewallConf().zone == "trusted"
    assert parse_config(conf(backend="firewalld", firewalldZone="")).zone == "trusted"


def test_unknown_backend_falls_back_to_detection_which_may_pick_firewalld():
    assert parse_config(conf(backend="nope"), lambda: "firewalld").backend == "firewalld"


# ------------------------------------------------------------ addresses

@pytest.mark.parametrize("address, usable", [
    ("unix:path=/run/dbus/system_bus_socket", [("path", "/run/dbus/system_bus_socket")]),
    ("unix:abstract=/tmp/dbus-x,guid=1234", [("abstract", "/tmp/dbus-x")]),
    ("unix:path=/a%20b%2c", [("path", "/a b,")]),
    ("tcp:host=x,port=1;unix:path=/s", [("path", "/s")]),
    ("unixexec:path=/bin/sh", []),
    ("autolaunch:", []),
    ("launchd:env=X", []),
    ("nonce-tcp:host=x", []),
    ("unix:path=relative", []),
    ("unix:dir=/tmp", []),
    ("unix:path=/x%zz", []),
    ("unix:path=/x%00", []),
    ("garbage", []),
    ("", []),
])
def test_parse_address(address, usable):
    got, skipped = dbus.parse_address(address)
    assert got == usable
    if not usable and address:
        assert skipped


def test_address_default_and_environment(monkeypatch):
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    assert dbus.system_bus_address() == "unix:path=/var/run/dbus/system_bus_socket"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/x")
    assert dbus.system_bus_address() == "unix:path=/x"


def test_may_be_listening(tmp_path):
    assert not dbus.may_be_listening(f"unix:path={tmp_path}/none")
    assert not dbus.may_be_listening("unixexec:path=/bin/true")
    assert dbus.may_be_listening(f"unix:path={tmp_path}/none;unix:abstract=x")
    (tmp_path / "s").touch()
    assert dbus.may_be_listening(f"unix:path={tmp_path}/s")


def test_connect_refuses_unusable_addresses(tmp_path):
    with pytest.raises(dbus.BusUnavailable, match="transport not used"):
        dbus.connect("unixexec:path=/bin/sh")
    with pytest.raises(dbus.BusUnavailable, match="No such file"):
        dbus.connect(f"unix:path={tmp_path}/none")


# ------------------------------------------------------------ marshalling

def test_split_signature():
    assert dbus.split_signature("sa{sv}(ii)ay") == ["s", "a{sv}", "(ii)", "ay"]
    for bad in ("a", "(", "()", "z", "a{s"):
        with pytest.raises(dbus.ProtocolError):
            dbus.split_signature(bad)


def test_encode_call_layout():
    """The bytes of a call, checked field by field against the spec."""
    msg = dbus.encode_call(7, "org.fedoraproject.FirewallD1", "/org/fedoraproject/FirewallD1",
                           "org.fedoraproject.FirewallD1.zone", "addSource", "ss",
                           ["trusted", "10.0.0.2/32"])
    assert msg[:4] == b"l\x01\x00\x01"
    body_len, serial, fields_len = struct.unpack("<III", msg[4:16])
    assert serial == 7 and len(msg) == dbus.message_length(msg[:16])
    kind, fields, body = dbus.decode_message(msg)
    assert kind == dbus.METHOD_CALL and body == ["trusted", "10.0.0.2/32"]
    assert fields[dbus.F_MEMBER] == "addSource" and fields[dbus.F_SIGNATURE] == "ss"
    assert fields[dbus.F_PATH] == "/org/fedoraproject/FirewallD1"
    start = 16 + fields_len + (-(16 + fields_len) % 8)
    assert msg[start:start + 4] == struct.pack("<I", 7) and body_len == len(msg) - start


def test_roundtrip_of_every_type():
    sig = "ybnqiuxtdsogva{sv}(sas)ab"
    values = [255, True, -2, 65535, -5, 7, -(1 << 40), 1 << 63, 1.5, "ä", "/o", "a{sv}",
              ("s", "inner"), {"k": ("u", 3)}, ("x", ["a", "b"]), [True, False]]
    msg = dbus.encode_call(1, "d", "/p", "i.f", "m", sig, values)
    _kind, _fields, body = dbus.decode_message(msg)
    assert body == [255, True, -2, 65535, -5, 7, -(1 << 40), 1 << 63, 1.5, "ä", "/o", "a{sv}",
                    "inner", {"k": 3}, ("x", ["a", "b"]), [True, False]]


def test_big_endian_replies_are_read():
    body = struct.pack(">I", 5) + b"hello\0"
    fields = _fields_be([(5, "u", 1), (8, "g", "s")])
    head = b"B\x02\x00\x01" + struct.pack(">II", len(body), 9) + fields
    head += b"\0" * (-len(head) % 8)
    assert dbus.decode_message(head + body)[2] == ["hello"]


def _fields_be(fields) -> bytes:
    out = bytearray()
    for code, sig, value in fields:
        out += b"\0" * (-len(out) % 8)
        out += bytes([code]) + bytes([len(sig)]) + sig.encode() + b"\0"
        if sig == "u":
            out += b"\0" * (-(len(out) + 16) % 4)
            out += struct.pack(">I", value)
        else:
            out += bytes([len(value)]) + value.encode() + b"\0"
    return struct.pack(">I", len(out)) + bytes(out)


@pytest.mark.parametrize("data", [
    b"X\x02\x00\x01" + b"\0" * 12,                               # endianness
    b"l\x02\x00\x02" + b"\0" * 12,                               # version
    b"l\x02\x00\x01" + struct.pack("<III", 1 << 30, 1, 0),       # too big
])
def test_bad_headers(data):
    with pytest.raises(dbus.ProtocolError):
        dbus.message_length(data)


def test_truncated_and_deep_bodies_are_protocol_errors():
    msg = dbus.encode_call(1, "d", "/p", "i", "m", "s", ["hello"])
    with pytest.raises(dbus.ProtocolError):
        dbus.decode_message(msg[:-3])
    body_at = len(msg) - 10            # the string's length claims more than there is
    with pytest.raises(dbus.ProtocolError):
        dbus.decode_message(msg[:body_at] + struct.pack("<I", 99) + msg[body_at + 4:])
    deep = "a" * 70 + "y"
    with pytest.raises(dbus.ProtocolError):
        dbus.split_signature(deep)


def test_nul_in_a_string_is_refused_before_sending():
    with pytest.raises(ValueError):
        dbus.encode_call(1, "d", "/p", "i", "m", "s", ["a\0b"])


# ------------------------------------------------------------ a scripted peer

def reply(serial: int, sig: str = "", values=(), error: str = "", to: int = 0) -> bytes:
    """A METHOD_RETURN (or ERROR) to call `serial`."""
    w = dbus._Writer()
    for t, v in zip(dbus.split_signature(sig), values):
        w.write(t, v)
    fields = [(dbus.F_REPLY_SERIAL, ("u", serial))]
    if sig:
        fields.append((dbus.F_SIGNATURE, ("g", sig)))
    if error:
        fields.append((dbus.F_ERROR_NAME, ("s", error)))
    h = dbus._Writer()
    h.buf += b"l" + bytes([dbus.ERROR if error else dbus.METHOD_RETURN, 0, 1])
    h.write("u", len(w.buf))
    h.write("u", 1000 + serial)
    h.write("a(yv)", fields)
    h.pad(8)
    return bytes(h.buf + w.buf)


def signal() -> bytes:
    h = dbus._Writer()
    h.buf += b"l" + bytes([dbus.SIGNAL, 0, 1])
    h.write("u", 0)
    h.write("u", 5)
    h.write("a(yv)", [(dbus.F_MEMBER, ("s", "NameAcquired"))])
    h.pad(8)
    return bytes(h.buf)


class Peer:
    """The bus end of a socketpair: answers AUTH and Hello, then each call
    with `answer(member, args)` -> bytes to send (or None: stay silent)."""

    def __init__(self, answer, auth=b"OK 0123456789abcdef\r\n"):
        self.ours, self.theirs = socket.socketpair()
        self.answer, self.auth = answer, auth
        self.calls = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        s, buf = self.theirs, b""
        try:
            while b"\r\n" not in buf:
                buf += s.recv(4096)
            line, _, buf = buf.partition(b"\r\n")
            assert line == b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode()
            s.sendall(self.auth)
            while b"BEGIN\r\n" not in buf:
                buf += s.recv(4096)
            buf = buf.split(b"BEGIN\r\n", 1)[1]
            while True:
                while len(buf) < 16 or len(buf) < dbus.message_length(buf[:16]):
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = dbus.message_length(buf[:16])
                msg, buf = buf[:n], buf[n:]
                _kind, fields, body = dbus.decode_message(msg)
                serial = struct.unpack("<I", msg[8:12])[0]
                member = fields[dbus.F_MEMBER]
                self.calls.append((member, body))
                if member == "Hello":
                    s.sendall(signal() + reply(serial, "s", [":1.42"]))
                    continue
                out = self.answer(member, body, serial)
                if out is not None:
                    s.sendall(out)
        except OSError:
            return

    def connection(self, timeout=2.0) -> dbus.Connection:
        conn = dbus.Connection(self.ours, timeout)
        conn.authenticate()
        return conn


def test_hello_skips_signals_and_returns_values():
    peer = Peer(lambda m, a, s: reply(s, "b", [True]))
    with peer.connection() as conn:
        assert conn.unique_name == ":1.42"
        assert conn.call("d", "/p", "i", "querySource", "ss", ["z", "10.0.0.1/32"]) == [True]
    assert peer.calls[1] == ("querySource", ["z", "10.0.0.1/32"])


def test_error_replies_are_dbus_errors_printed_as_godbus_prints_them():
    peer = Peer(lambda m, a, s: reply(s, "s", ["INVALID_ZONE: nosuch"],
                                      error="org.fedoraproject.FirewallD1.Exception"))
    with peer.connection() as conn:
        with pytest.raises(dbus.DBusError) as e:
            conn.call("d", "/p", "i", "addSource", "ss", ["nosuch", "x"])
    assert str(e.value) == "INVALID_ZONE: nosuch"
    assert e.value.name == "org.fedoraproject.FirewallD1.Exception"
    assert str(dbus.DBusError("org.x.Name")) == "org.x.Name"


def test_a_silent_peer_is_a_timeout_not_a_hang():
    peer = Peer(lambda m, a, s: None)
    with peer.connection(timeout=0.3) as conn:
        with pytest.raises(dbus.BusTimeout):
            conn.call("d", "/p", "i", "m")


def test_refused_auth_and_closed_peer():
    peer = Peer(lambda m, a, s: None, auth=b"REJECTED EXTERNAL\r\n")
    with pytest.raises(dbus.BusUnavailable, match="refused authentication"):
        peer.connection()
    peer = Peer(lambda m, a, s: b"")
    conn = peer.connection()
    peer.theirs.close()
    with pytest.raises(dbus.BusUnavailable):
        conn.call("d", "/p", "i", "m")
    conn.close()


def test_replies_to_other_serials_are_skipped():
    peer = Peer(lambda m, a, s: reply(s + 100, "s", ["stray"]) + reply(s, "s", ["mine"]))
    with peer.connection() as conn:
        assert conn.call("d", "/p", "i", "m") == ["mine"]


def test_peer_credentials_must_be_root():
    a, b = socket.socketpair()
    with a, b:
        assert dbus._peer_uid(a) == os.geteuid()


# ------------------------------------------------------------ the backend

class FakeBus:
    def __init__(self, errors=None, present=()):
        self.errors = errors or {}        # (method, cidr) -> DBusError
        self.present = set(present)
        self.calls = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def call(self, dest, path, iface, member, sig, args):
        assert (dest, path, iface, sig) == (backend.FIREWALLD_NAME, backend.FIREWALLD_PATH,
                                            backend.ZONE_INTERFACE, "ss")
        self.calls.append((member, *args))
        err = self.errors.get((member, args[1]))
        if err:
            raise err
        if member == "addSource":
            self.present.add(args[1])
        elif member == "removeSource":
            self.present.discard(args[1])
        elif member == "querySource":
            return [args[1] in self.present]
        return [args[0]]


IPS = [ContainerIP(4, "10.0.0.2"), ContainerIP(6, "fd00::2")]
ATT = backend.Attachment("n", "c", "eth0")


@pytest.fixture
def bus(monkeypatch):
    holder = {"bus": FakeBus()}
    monkeypatch.setattr(dbus, "system_bus", lambda *a, **k: holder["bus"])
    return holder


def test_setup_adds_every_address_to_the_zone(bus):
    backend.FirewalldBackend("trusted").setup(IPS, ATT)
    assert bus["bus"].calls == [("addSource", "trusted", "10.0.0.2/32"),
                                ("addSource", "trusted", "fd00::2/128")]


def test_setup_accepts_zone_already_set(bus):
    bus["bus"] = FakeBus({("addSource", "10.0.0.2/32"): dbus.DBusError(
        "org.fedoraproject.FirewallD1.Exception",
        "ZONE_ALREADY_SET: '10.0.0.2/32' already bound to 'trusted'")})
    backend.FirewalldBackend("trusted").setup(IPS, ATT)


def test_setup_failure_takes_back_what_it_added(bus):
    bus["bus"] = FakeBus({("addSource", "fd00::2/128"): dbus.DBusError(
        "org.fedoraproject.FirewallD1.Exception", "ZONE_CONFLICT: 'fd00::2/128' already bound")})
    with pytest.raises(CNIError) as e:
        backend.FirewalldBackend("trusted").setup(IPS, ATT)
    assert e.value.code == 999
    assert e.value.msg == ("failed to add the address fd00::2/128 to trusted zone: "
                           "ZONE_CONFLICT: 'fd00::2/128' already bound")
    assert bus["bus"].calls[-1] == ("removeSource", "trusted", "10.0.0.2/32")
    assert bus["bus"].present == set()


def test_teardown_ignores_every_error(bus):
    err = dbus.DBusError("org.fedoraproject.FirewallD1.Exception", "UNKNOWN_SOURCE: x")
    bus["bus"] = FakeBus({("removeSource", "10.0.0.2/32"): err})
    backend.FirewalldBackend("trusted").teardown(IPS, ATT)
    assert [c[0] for c in bus["bus"].calls] == ["removeSource", "removeSource"]


def test_teardown_without_a_bus_or_addresses_succeeds(monkeypatch):
    def no_bus(*a, **k):
        raise dbus.BusUnavailable("gone")
    monkeypatch.setattr(dbus, "system_bus", no_bus)
    backend.FirewalldBackend("trusted").teardown(IPS, ATT)
    backend.FirewalldBackend("trusted").teardown([], ATT)
    with pytest.raises(CNIError) as e:
        backend.FirewalldBackend("trusted").setup(IPS, ATT)
    assert e.value.msg == "failed to connect to the system bus (firewalld): gone"


def test_check_reports_missing_sources(bus):
    bus["bus"] = FakeBus(present={"10.0.0.2/32"})
    assert backend.FirewalldBackend("public").check(IPS, ATT) == [
        "failed to find the address fd00::2/128 in public zone"]
    bus["bus"].present.add("fd00::2/128")
    assert backend.FirewalldBackend("public").check(IPS, ATT) == []


def test_isolation_plan_keeps_only_the_isolation_rules():
    from pycni.plugins.firewall import rules_iptables as ipt
    p = backend.isolation_plan(ipt.plan(4, IPS, "CNI-ADMIN", "isolated", "br0"))
    assert p.chains == [ipt.STAGE1, ipt.STAGE2]
    assert all(op.chain in (ipt.STAGE1, ipt.STAGE2) or op.rule[-1] == ipt.STAGE1
               for op in p.ops)
    assert not any("10.0.0.2/32" in op.rule for op in p.ops)


def test_detection(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/none")
    monkeypatch.setattr(backend, "default_backend", lambda: "iptables")
    assert backend.detect() == "iptables"

    class Bus(FakeBus):
        def __init__(self, owner):
            super().__init__()
            self.owner = owner

        def call(self, dest, path, iface, member, sig="", args=()):
            assert (member, args) == ("GetNameOwner", [backend.FIREWALLD_NAME])
            if not self.owner:
                raise dbus.DBusError("org.freedesktop.DBus.Error.NameHasNoOwner", "no")
            return [":1.7"]
    monkeypatch.setattr(dbus, "may_be_listening", lambda: True)
    for owner, expected in ((True, "firewalld"), (False, "iptables")):
        monkeypatch.setattr(dbus, "system_bus", lambda *a, o=owner, **k: Bus(o))
        assert backend.detect() == expected

    def unavailable(*a, **k):
        raise dbus.BusTimeout("slow")
    monkeypatch.setattr(dbus, "system_bus", unavailable)
    assert backend.detect() == "iptables"


# ------------------------------------------------------------ start-up cost

def test_what_the_firewalld_path_loads():
    """pycni.dbus costs `_socket`, `_struct`/`struct` (which most plugins
    load anyway) and nothing from the heavy list; a machine without a bus
    socket pays only a stat for detection."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
    code = (f"import sys\nsys.path.insert(0, {parent!r})\nbefore=set(sys.modules)\n"
            "from pycni.plugins.firewall import backend\n"
            "mid=set(sys.modules)\n"
            "backend.firewalld_running()\n"
            "idle=set(sys.modules)\n"
            "from pycni import dbus\n"
            "try:\n    dbus.connect('unix:path=/nonexistent/x')\nexcept dbus.BusUnavailable:\n"
            "    pass\n"
            "dbus.encode_call(1, 'd', '/p', 'i', 'm', 's', ['x'])\n"
            "after=set(sys.modules)\n"
            "import json\nprint(json.dumps([sorted(idle - mid), sorted(after - idle)]))\n")
    env = {"PATH": "/usr/bin:/bin", "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/x"}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    idle, used = json.loads(proc.stdout.splitlines()[-1])
    assert [m for m in idle if not m.startswith("pycni")] == []
    assert set(used) - {"_socket", "_struct", "struct"} == set()
