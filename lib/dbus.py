"""A minimal D-Bus client: method calls on the system bus, nothing else.

The firewall plugin's firewalld backend makes a handful of calls per run
(GetNameOwner, addSource, removeSource, querySource): this module speaks
just enough of the D-Bus wire protocol for that, on `_socket` and
`struct`, so a plugin process pays neither a third-party library nor the
stdlib's `socket`. No signals, no unix fds, no object export.

    with dbus.system_bus() as bus:
        owner = bus.call(dbus.BUS_NAME, dbus.BUS_PATH, dbus.BUS_NAME, "GetNameOwner",
                         "s", ["org.fedoraproject.FirewallD1"])

What a caller trusts, and what not:

- The bus address is `DBUS_SYSTEM_BUS_ADDRESS` (the runtime's environment,
  as for every D-Bus client and for the reference plugin), else
  `unix:path=/var/run/dbus/system_bus_socket`. Of its `;`-separated
  alternatives only `unix:path=` and `unix:abstract=` are used: never
  `unixexec:` or `autolaunch:` (they run a program), `launchd:`, `tcp:` or
  `nonce-tcp:` (the network); an address without a usable alternative is
  `BusUnavailable`.
- The listening socket must have been created by root (SO_PEERCRED of the
  connection: uid 0), checked before a byte is sent. Any local user may
  bind a socket in /tmp or an abstract name in the host's network
  namespace; a bus served by such a socket is `BusUnavailable` too. A
  system bus is always root's (dbus-daemon binds before dropping to
  messagebus; dbus-broker's socket is systemd's).
- Every call has a deadline (`timeout`): a bus or service that never
  answers gives `BusTimeout`, never a hang. Replies larger than
  MAX_MESSAGE or malformed in any way are `ProtocolError`.
"""

from . import posixos as os

BUS_NAME = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
TIMEOUT = 10.0              # seconds, per call (connect + auth + Hello: one each)
MAX_MESSAGE = 1 << 20       # far above any reply we ask for

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
F_PATH, F_INTERFACE, F_MEMBER, F_ERROR_NAME, F_REPLY_SERIAL, F_DESTINATION, \
    F_SENDER, F_SIGNATURE, F_UNIX_FDS = range(1, 10)


class BusUnavailable(Exception):
    """No usable bus at the address (nothing listens, not root's, refused)."""


class BusTimeout(BusUnavailable):
    """The bus or the called service did not answer in time."""


class ProtocolError(BusUnavailable):
    """The peer sent something that is not D-Bus as we expect it."""


class DBusError(Exception):
    """An error reply: `name` (org.freedesktop.DBus.Error.ServiceUnknown,
    org.fedoraproject.FirewallD1.Exception, ...) and its message. `str()`
    is the message when there is one, else the name (as godbus prints it)."""

    def __init__(self, name: str, message: str = ""):
        super().__init__(message or name)
        self.name = name
        self.message = message


# --- addresses -----------------------------------------------------------------

def system_bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def _unescape(value: str) -> str:
    """D-Bus address values are %-escaped bytes."""
    if "%" not in value:
        return value
    out = bytearray()
    i = 0
    raw = value.encode("utf-8", "surrogateescape")
    while i < len(raw):
        if raw[i] == 0x25:   # %
            hexpart = raw[i + 1:i + 3]
            if len(hexpart) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in hexpart):
                raise ValueError(f"bad escape in D-Bus address value {value!r}")
            out.append(int(hexpart, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def parse_address(address: str) -> tuple[list[tuple[str, str]], list[str]]:
    """([(kind, value)] with kind "path" or "abstract", in order of
    preference; [why each other alternative was skipped])."""
    usable, skipped = [], []
    for entry in address.split(";"):
        if not entry:
            continue
        transport, colon, rest = entry.partition(":")
        if not colon:
            skipped.append(f"{entry!r}: not a D-Bus address")
            continue
        if transport != "unix":
            skipped.append(f"{transport}: transport not used (only unix:path= and unix:abstract=)")
            continue
        keys: dict[str, str] = {}
        try:
            for pair in rest.split(","):
                if not pair:
                    continue
                key, eq, value = pair.partition("=")
                if not eq:
                    raise ValueError(f"{pair!r} is no key=value")
                keys[key] = _unescape(value)
        except ValueError as err:
            skipped.append(f"unix: {err}")
            continue
        if "path" in keys and "\0" not in keys["path"] and keys["path"].startswith("/"):
            usable.append(("path", keys["path"]))
        elif "abstract" in keys and "\0" not in keys["abstract"]:
            usable.append(("abstract", keys["abstract"]))
        else:
            skipped.append("unix: needs an absolute path= or an abstract= "
                           "(dir=, tmpdir=, runtime= are for servers)")
    return usable, skipped


# --- marshalling -----------------------------------------------------------------

_FIXED = {"y": (1, "B"), "b": (4, "I"), "n": (2, "h"), "q": (2, "H"), "i": (4, "i"),
          "u": (4, "I"), "x": (8, "q"), "t": (8, "Q"), "d": (8, "d"), "h": (4, "I")}
_STRINGS = "sog"


def split_signature(sig: str) -> list[str]:
    """The complete types of a signature: "sa{sv}(ii)" -> ["s", "a{sv}", "(ii)"]."""
    out, i = [], 0
    while i < len(sig):
        end = _type_end(sig, i)
        out.append(sig[i:end])
        i = end
    return out


def _type_end(sig: str, i: int, depth: int = 0) -> int:
    if depth > 64 or i >= len(sig):
        raise ProtocolError(f"bad signature {sig!r}")
    c = sig[i]
    if c in _FIXED or c in _STRINGS or c == "v":
        return i + 1
    if c == "a":
        return _type_end(sig, i + 1, depth + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while j < len(sig) and sig[j] != close:
            j = _type_end(sig, j, depth + 1)
        if j >= len(sig) or j == i + 1:
            raise ProtocolError(f"bad signature {sig!r}")
        return j + 1
    raise ProtocolError(f"bad signature {sig!r}")


def _alignment(t: str) -> int:
    c = t[0]
    if c in _FIXED:
        return _FIXED[c][0]
    if c in "sa":
        return 4
    if c in "({":
        return 8
    return 1   # g, v


class _Writer:
    def __init__(self):
        import struct
        self.struct = struct
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def write(self, t: str, value) -> None:
        c = t[0]
        pack = self.struct.pack
        if c in _FIXED:
            size, fmt = _FIXED[c]
            self.pad(size)
            self.buf += pack("<" + fmt, int(bool(value)) if c == "b" else value)
        elif c in "so":
            data = value.encode()
            if b"\0" in data:
                raise ValueError("a D-Bus string has no NUL character")
            self.pad(4)
            self.buf += pack("<I", len(data)) + data + b"\0"
        elif c == "g":
            data = value.encode()
            if len(data) > 255:
                raise ValueError("signature too long")
            self.buf += bytes([len(data)]) + data + b"\0"
        elif c == "v":
            sig, inner = value
            self.write("g", sig)
            self.write(sig, inner)
        elif c == "a":
            elem = t[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_alignment(elem))
            start = len(self.buf)
            items = value.items() if elem[0] == "{" else value
            for item in items:
                self.write(elem, item)
            self.buf[at:at + 4] = pack("<I", len(self.buf) - start)
        elif c in "({":
            self.pad(8)
            for sub, item in zip(split_signature(t[1:-1]), value):
                self.write(sub, item)
        else:
            raise ValueError(f"cannot marshal {t!r}")


class _Reader:
    def __init__(self, data: bytes, little: bool, pos: int = 0):
        import struct
        self.struct = struct
        self.data, self.pos = data, pos
        self.order = "<" if little else ">"

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("truncated message")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def align(self, n: int) -> None:
        self._take(-self.pos % n)

    def read(self, t: str, depth: int = 0):
        if depth > 64:
            raise ProtocolError("nesting too deep")
        c = t[0]
        if c in _FIXED:
            size, fmt = _FIXED[c]
            self.align(size)
            value = self.struct.unpack(self.order + fmt, self._take(size))[0]
            return bool(value) if c == "b" else value
        if c in "so":
            self.align(4)
            n = self.struct.unpack(self.order + "I", self._take(4))[0]
            text = self._take(n + 1)
            return text[:-1].decode("utf-8", "replace")
        if c == "g":
            n = self._take(1)[0]
            return self._take(n + 1)[:-1].decode("ascii", "replace")
        if c == "v":
            sig = self.read("g")
            if len(split_signature(sig)) != 1:
                raise ProtocolError(f"bad variant signature {sig!r}")
            return self.read(sig, depth + 1)
        if c == "a":
            elem = t[1:]
            self.align(4)
            n = self.struct.unpack(self.order + "I", self._take(4))[0]
            self.align(_alignment(elem))
            end = self.pos + n
            if end > len(self.data):
                raise ProtocolError("truncated array")
            items = []
            while self.pos < end:
                items.append(self.read(elem, depth + 1))
            if self.pos != end:
                raise ProtocolError("array length mismatch")
            return dict(items) if elem[0] == "{" else items
        if c in "({":
            self.align(8)
            return tuple(self.read(sub, depth + 1) for sub in split_signature(t[1:-1]))
        raise ProtocolError(f"cannot unmarshal {t!r}")


def encode_call(serial: int, destination: str, path: str, interface: str, member: str,
                signature: str = "", args=()) -> bytes:
    """One METHOD_CALL message, little-endian."""
    body = _Writer()
    for t, value in zip(split_signature(signature), args):
        body.write(t, value)
    fields = [(F_PATH, ("o", path)), (F_MEMBER, ("s", member))]
    if interface:
        fields.append((F_INTERFACE, ("s", interface)))
    if destination:
        fields.append((F_DESTINATION, ("s", destination)))
    if signature:
        fields.append((F_SIGNATURE, ("g", signature)))
    head = _Writer()
    head.buf += b"l" + bytes([METHOD_CALL, 0, 1])
    head.write("u", len(body.buf))
    head.write("u", serial)
    head.write("a(yv)", fields)
    head.pad(8)
    return bytes(head.buf + body.buf)


def message_length(prefix: bytes) -> int:
    """The full length of a message from its first 16 bytes."""
    import struct
    order = {0x6C: "<", 0x42: ">"}.get(prefix[0])
    if order is None or prefix[3] != 1:
        raise ProtocolError("not a D-Bus message")
    body_len, _serial, fields_len = struct.unpack(order + "III", prefix[4:16])
    total = 16 + fields_len + (-(16 + fields_len) % 8) + body_len
    if total > MAX_MESSAGE:
        raise ProtocolError(f"message of {total} bytes")
    return total


def decode_message(data: bytes) -> tuple[int, dict, list]:
    """(type, {field code: value}, body values) of one whole message."""
    if len(data) < 16 or len(data) != message_length(data[:16]):
        raise ProtocolError("truncated message")
    r = _Reader(data, data[0] == 0x6C, 12)
    fields = dict(r.read("a(yv)"))
    r.align(8)
    signature = fields.get(F_SIGNATURE, "")
    body = [r.read(t) for t in split_signature(signature)]
    return data[1], fields, body


# --- the connection ----------------------------------------------------------------

class Connection:
    def __init__(self, sock, timeout: float = TIMEOUT):
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.serial = 0
        self.unique_name = ""

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv_into_buf(self, deadline: float) -> None:
        import time
        left = deadline - time.monotonic()
        if left <= 0:
            raise BusTimeout("no answer from the bus in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise BusTimeout("no answer from the bus in time") from None
        except OSError as err:
            raise BusUnavailable(f"reading from the bus: {err.strerror or err}") from None
        if not chunk:
            raise BusUnavailable("the bus closed the connection")
        self.buf += chunk

    def _send(self, data: bytes, deadline: float) -> None:
        import time
        left = deadline - time.monotonic()
        if left <= 0:
            raise BusTimeout("no answer from the bus in time")
        self.sock.settimeout(left)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise BusTimeout("the bus does not read") from None
        except OSError as err:
            raise BusUnavailable(f"writing to the bus: {err.strerror or err}") from None

    def _line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > 4096:
                raise ProtocolError("authentication line too long")
            self._recv_into_buf(deadline)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def authenticate(self) -> None:
        """SASL EXTERNAL with our uid, then Hello."""
        import time
        deadline = time.monotonic() + self.timeout
        uid = str(os.geteuid()).encode().hex().encode()
        self._send(b"\0AUTH EXTERNAL " + uid + b"\r\n", deadline)
        reply = self._line(deadline)
        if not reply.startswith(b"OK "):
            raise BusUnavailable("the bus refused authentication: "
                                 + reply.decode("ascii", "replace")[:200])
        self._send(b"BEGIN\r\n", deadline)
        self.unique_name = self.call(BUS_NAME, BUS_PATH, BUS_NAME, "Hello")[0]

    def _message(self, deadline: float) -> bytes:
        while len(self.buf) < 16:
            self._recv_into_buf(deadline)
        total = message_length(self.buf[:16])
        while len(self.buf) < total:
            self._recv_into_buf(deadline)
        data, self.buf = self.buf[:total], self.buf[total:]
        return data

    def call(self, destination: str, path: str, interface: str, member: str,
             signature: str = "", args=(), timeout: float | None = None) -> list:
        """Call a method and return the reply's values; an error reply is
        raised as DBusError."""
        import time
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.serial += 1
        serial = self.serial
        self._send(encode_call(serial, destination, path, interface, member,
                               signature, args), deadline)
        while True:
            kind, fields, body = decode_message(self._message(deadline))
            if kind not in (METHOD_RETURN, ERROR) or fields.get(F_REPLY_SERIAL) != serial:
                continue      # a signal (NameAcquired) or a stray reply
            if kind == ERROR:
                message = body[0] if body and isinstance(body[0], str) else ""
                raise DBusError(str(fields.get(F_ERROR_NAME, "")), message)
            return body


def _peer_uid(sock) -> int:
    import struct
    import _socket
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return struct.unpack("3i", creds)[1]


def connect(address: str | None = None, timeout: float = TIMEOUT) -> Connection:
    """An authenticated connection to the bus at `address` (default: the
    system bus), trying its alternatives in order."""
    import _socket
    address = system_bus_address() if address is None else address
    usable, skipped = parse_address(address)
    problems = list(skipped)
    for kind, value in usable:
        target = value if kind == "path" else "\0" + value
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(target)
            except TimeoutError:
                raise BusTimeout(f"connecting to {kind}={value}: timed out") from None
            except OSError as err:
                raise BusUnavailable(f"connecting to {kind}={value}: "
                                     f"{err.strerror or err}") from None
            uid = _peer_uid(sock)
            if uid != 0:
                raise BusUnavailable(f"{kind}={value} is served by uid {uid}, not root")
            conn = Connection(sock, timeout)
            conn.authenticate()
            return conn
        except BusUnavailable as err:
            sock.close()
            problems.append(str(err))
        except BaseException:
            sock.close()
            raise
    raise BusUnavailable(f"no usable D-Bus system bus at {address!r}: "
                         + ("; ".join(problems) or "no address"))


def system_bus(timeout: float = TIMEOUT) -> Connection:
    return connect(None, timeout)


def may_be_listening(address: str | None = None) -> bool:
    """False only when no alternative of the address can have a listener:
    every one is a unix:path= that does not exist (a plain stat, no
    import, no connect). Lets a caller skip the connection attempt
    cheaply on a machine without a system bus."""
    address = system_bus_address() if address is None else address
    usable, _skipped = parse_address(address)
    for kind, value in usable:
        if kind == "abstract" or os.path.exists(value):
            return True
    return False


def name_has_owner(conn: Connection, name: str) -> bool:
    """Whether `name` is owned on the bus (GetNameOwner answers), as the
    reference decides that firewalld runs."""
    try:
        conn.call(BUS_NAME, BUS_PATH, BUS_NAME, "GetNameOwner", "s", [name])
    except DBusError:
        return False
    return True
