"""`dhcp daemon`: holds the DHCP leases of the dhcp IPAM plugin.

Flags as the reference's (Go flag syntax: -name value, -name=value, one
or two dashes): -socketpath (default /run/cni/dhcp.sock), -hostprefix,
-pidfile, -broadcast, -timeout, -resendmax, -resendtimeout (Go
durations: 10s, 1m30s, 500ms); ours: -statedir (default
/var/lib/cni/dhcp), where each live lease is kept, one file per
attachment, so that a restarted daemon goes on renewing them.

Security: the socket lives in a directory only root may change and has
mode 0600; a connection from any uid but 0 is closed (SO_PEERCRED). A
request names a network namespace that must be one (nsfs, opened without
following it anywhere else) and that is not the daemon's own nor the
init namespace: the daemon never configures or takes leases on the host.
Each ADD's namespace identity (device, inode) is kept with its lease, and
renewals stop once the path names another namespace or the interface is
gone.

A long-running process: it imports what a plugin cannot afford (socket,
threading, json).
"""

import errno
import json
import os
import signal
import socket
import stat
import sys
import threading
import time

from pycni import decode, digest, dhcp4, files, netns, skel
from pycni.posixos import held_only_by
from pycni.errors import CNIError, INTERNAL, INVALID_ENVIRONMENT

from . import client, config as cfg, lease as leases
from .rpc import BANNER

DEFAULT_STATE_DIR = "/var/lib/cni/dhcp"
REQUEST_READ_TIMEOUT = 10.0


def log(msg: str) -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    try:
        sys.stderr.write(f"{stamp} {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------ flags

def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the units a flag needs (ns..h), in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        if i == 0:
            raise ValueError(f"time: invalid duration {text!r}")
        number, s = float(s[:i]), s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit, s = s[:j], s[j:]
        if unit not in units:
            raise ValueError(f"time: missing or unknown unit in duration {text!r}")
        total += number * units[unit]
    return sign * total


FLAGS = {"pidfile": "", "hostprefix": "", "socketpath": "", "statedir": "",
         "broadcast": False, "timeout": "10s", "resendmax": "62s", "resendtimeout": "208s"}


def parse_flags(argv: list) -> dict:
    """Go flag parsing of the daemon's flags; ValueError on a bad one."""
    out: dict = dict(FLAGS)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            break
        name = arg.lstrip("-")
        if len(arg) - len(name) > 2:
            raise ValueError(f"bad flag syntax: {arg}")
        name, eq, value = name.partition("=")
        if name not in FLAGS:
            raise ValueError(f"flag provided but not defined: -{name}")
        if isinstance(FLAGS[name], bool):
            if eq:
                if value.lower() not in ("1", "0", "t", "f", "true", "false"):
                    raise ValueError(f'invalid boolean value "{value}" for -{name}')
                out[name] = value.lower() in ("1", "t", "true")
            else:
                out[name] = True
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise ValueError(f"flag needs an argument: -{name}")
                value = argv[i]
            out[name] = value
        i += 1
    for name in ("timeout", "resendmax", "resendtimeout"):
        out[name] = parse_duration(out[name])
    return out


# ------------------------------------------------------------------ leases

class Task:
    """A live lease and the thread that renews it."""

    def __init__(self, lease: leases.Lease):
        self.lease = lease
        self.stop = threading.Event()
        self.poke = threading.Event()
        self.lock = threading.Lock()    # stop vs. a renewal being written down
        self.thread: threading.Thread | None = None


class Daemon:
    def __init__(self, flags: dict):
        self.host_prefix = flags["hostprefix"]
        self.params = client.Params(flags["timeout"], flags["resendmax"],
                                    flags["resendtimeout"], flags["broadcast"])
        self.state_path = flags["statedir"] or DEFAULT_STATE_DIR
        self.state_fd = files.open_tree(self.state_path, 0o700)
        st = os.fstat(self.state_fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            os.fchmod(self.state_fd, 0o700) if st.st_uid == os.geteuid() else None
            if st.st_uid != os.geteuid():
                raise OSError(errno.EPERM, f"state directory {self.state_path} is owned by "
                              f"uid {st.st_uid}")
        self.lock = threading.Lock()
        self.tasks: dict[str, Task] = {}
        self.id_locks: dict[str, threading.Lock] = {}
        self.stopping = threading.Event()

    # answer bound: the longest one request may take
    @property
    def max_wait(self) -> float:
        return self.params.resend_timeout + self.params.timeout + 10.0

    def id_lock(self, client_id: str) -> threading.Lock:
        with self.lock:
            return self.id_locks.setdefault(client_id, threading.Lock())

    # ---------------------------------------------------------- persistence
    @staticmethod
    def file_name(client_id: str) -> str:
        return digest.sha512_hex(client_id)[:40] + ".lease"

    def persist(self, lease: leases.Lease) -> None:
        files.write_atomic_at(self.state_fd, self.file_name(lease.client_id),
                              json.dumps(lease.to_dict()).encode(), 0o600)

    def forget(self, task: Task) -> None:
        client_id = task.lease.client_id
        with self.lock:
            if self.tasks.get(client_id) is task:
                del self.tasks[client_id]
        files.unlink_at(self.state_fd, self.file_name(client_id))

    def restore(self) -> None:
        """Take over the leases a previous daemon left: those whose
        namespace and interface still exist are renewed from now on."""
        for name in sorted(os.listdir(self.state_fd)):
            if not name.endswith(".lease"):
                continue
            try:
                data = files.read_at(self.state_fd, name, 1 << 16)
                if data is None:        # gone since the listing
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
                lease = leases.Lease.from_dict(json.loads(data))
                if self.file_name(lease.client_id) != name:
                    raise ValueError("file name does not match its client ID")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log(f"state file {name}: unusable, removed ({exc})")
                files.unlink_at(self.state_fd, name)
                continue
            if not client.link_alive(self.host_prefix + lease.netns, lease.netns_id,
                                     lease.ifname, lease.mac):
                log(f"{lease.client_id}: container gone while the daemon was down, lease dropped")
                files.unlink_at(self.state_fd, name)
                continue
            log(f"{lease.client_id}: lease {lease.address} restored, expiration is "
                f"{time.ctime(lease.expires_at)}")
            self.start(Task(lease), restored=True)

    def start(self, task: Task, restored: bool = False) -> None:
        with self.lock:
            self.tasks[task.lease.client_id] = task
        task.thread = threading.Thread(target=self.maintain, args=(task, restored),
                                       name=task.lease.client_id[:15], daemon=True)
        task.thread.start()

    # ----------------------------------------------------------- exchanges
    def exchange(self, lease: leases.Lease, fn, stop=None, bring_up: bool = True):
        sock, mac, addresses = client.open_socket(self.host_prefix + lease.netns, lease.ifname,
                                                  bring_up)
        try:
            lease.mac = lease.mac or mac
            ex = client.Exchange(sock, mac, lease.client_id, lease.options, self.params, stop,
                                 addresses)
            return fn(ex)
        finally:
            sock.close()

    def maintain(self, task: Task, restored: bool) -> None:
        lease = task.lease
        path = self.host_prefix + lease.netns
        while not task.stop.is_set() and not self.stopping.is_set():
            now = time.time()
            step, at = leases.next_step(lease, now)
            if at > now:
                task.poke.wait(min(at - now, 3600.0))
                task.poke.clear()
                continue
            if not client.link_alive(path, lease.netns_id, lease.ifname, lease.mac):
                log(f"{lease.client_id}: interface {lease.ifname} no longer exists, "
                    "terminating lease maintenance")
                self.forget(task)
                return
            if step == "expire" and restored:
                step = "rebind"             # once: the daemon was down past the expiry
            restored = False
            if step == "expire":
                log(f"{lease.client_id}: lease expired, bringing interface DOWN")
                try:
                    client.set_link_down(path, lease.ifname)
                except Exception as exc:     # the namespace went away meanwhile
                    log(f"{lease.client_id}: failed to bring {lease.ifname} DOWN: {exc}")
                self.forget(task)
                return
            stage_end = lease.bound_at + (lease.t2 if step == "renew" else lease.lease_time)
            span = max(1.0, min(stage_end - now, self.params.resend_timeout))
            deadline = time.monotonic() + span
            log(f"{lease.client_id}: {'renewing' if step == 'renew' else 'rebinding'} lease")
            try:
                raw = self.exchange(lease, lambda ex: ex.renew(
                    lease.address, lease.server_id, deadline, rebinding=step == "rebind"),
                    task.stop, bring_up=False)
            except client.Stopped:
                return
            except client.Nak as exc:
                log(f"{lease.client_id}: {exc}; the address is no longer ours, "
                    "bringing interface DOWN")
                try:
                    client.set_link_down(path, lease.ifname)
                except Exception:
                    pass
                self.forget(task)
                return
            except (client.DHCPError, OSError, CNIError) as exc:
                log(f"{lease.client_id}: {exc}")
                # RFC 2131 4.4.5: half the time left in this stage (at most
                # 60 s, at least 0.5 s), never past the stage's end
                left = stage_end - time.time()
                if left > 0:
                    task.stop.wait(min(left, 60.0, max(0.5, left / 2)))
                continue
            with task.lock:
                if task.stop.is_set():
                    return
                lease.commit(raw, time.time())
                self.persist(lease)
            log(f"{lease.client_id}: lease renewed, expiration is {time.ctime(lease.expires_at)}")

    def stop_task(self, task: Task, release: bool = True) -> None:
        with task.lock:
            task.stop.set()
        task.poke.set()
        if task.thread is not None and task.thread is not threading.current_thread():
            task.thread.join(self.max_wait)
        lease = task.lease
        if release and client.link_alive(self.host_prefix + lease.netns, lease.netns_id,
                                         lease.ifname, lease.mac):
            log(f"{lease.client_id}: releasing lease")
            try:
                self.exchange(lease, lambda ex: ex.release(lease.address, lease.server_id),
                              bring_up=False)
            except (client.DHCPError, OSError, CNIError) as exc:
                log(f"{lease.client_id}: failed to release DHCP lease: {exc}")
        elif release:
            log(f"{lease.client_id}: interface {lease.ifname} is gone, no DHCPRELEASE sent; "
                "the lease runs out on the server")
        self.forget(task)

    # ------------------------------------------------------------- requests
    def netns_of(self, path) -> tuple[str, list]:
        """(path, [dev, ino]) of the request's namespace; refused unless it
        is a network namespace other than the daemon's and init's."""
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise CNIError(INVALID_ENVIRONMENT, f"netns path {path!r} is not absolute")
        fd = netns.open_netns(self.host_prefix + path)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        ident = [st.st_dev, st.st_ino]
        for own in ("/proc/self/ns/net", "/proc/1/ns/net",
                    self.host_prefix + "/proc/1/ns/net"):
            try:
                o = os.stat(own)
            except OSError:
                continue
            if [o.st_dev, o.st_ino] == ident:
                raise CNIError(INVALID_ENVIRONMENT,
                               f'netns "{path}" is the host\'s own network namespace: refused')
        return path, ident

    def parse(self, req: dict):
        cid, ifname = req.get("containerID"), req.get("ifName")
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise CNIError(INVALID_ENVIRONMENT, "containerID and ifName must be strings")
        skel.validate_container_id(cid)
        skel.validate_ifname(ifname)
        text = req.get("config")
        if not isinstance(text, str):
            raise CNIError(INTERNAL, "error parsing netconf: no config")
        conf = cfg.load(decode.loads(text.encode()))
        args = req.get("args") if isinstance(req.get("args"), str) else ""
        return cid, ifname, conf, args

    def allocate(self, req: dict, check: bool = False):
        cid, ifname, conf, args = self.parse(req)
        opts = cfg.prepare_options(conf, args)
        client_id = dhcp4.generate_client_id(cid, conf.name, ifname)
        path, ident = self.netns_of(req.get("netns"))
        with self.id_lock(client_id):
            with self.lock:
                task = self.tasks.get(client_id)
            if task is not None and task.lease.netns_id != ident:
                self.stop_task(task)        # a stale lease of an earlier namespace
                task = None
            if task is not None:
                log(f"{client_id}: Checking lease")
                task.poke.set()
                return leases.result(task.lease.ack, conf.ipam.priority).to_dict("1.1.0"), None
            if check:
                raise CNIError(INTERNAL, f"no DHCP lease for {client_id}")
            log(f"{client_id}: acquiring lease")
            lease = leases.Lease(client_id, path, ident, ifname, "", opts)
            lease.container_id, lease.network = cid, conf.name
            try:
                raw = self.exchange(lease, lambda ex: ex.acquire())
            except client.Nak as exc:
                raise CNIError(INTERNAL, str(exc)) from None
            except client.DHCPError as exc:
                msg = str(exc)
                if msg == "no more tries":
                    msg = (f"no answer from a DHCP server on \"{ifname}\" within "
                           f"{self.params.resend_timeout:g}s: no more tries")
                raise CNIError(INTERNAL, msg) from None
            lease.commit(raw, time.time())
            task = Task(lease)
            try:
                result = leases.result(raw, conf.ipam.priority).to_dict("1.1.0")
            except CNIError:
                self.stop_task(task)
                raise
            self.persist(lease)
            self.start(task)
            log(f"{client_id}: lease {lease.address} acquired, expiration is "
                f"{time.ctime(lease.expires_at)}")
            return result, task

    def release(self, req: dict):
        cid, ifname, conf, _args = self.parse(req)
        client_id = dhcp4.generate_client_id(cid, conf.name, ifname)
        with self.id_lock(client_id):
            with self.lock:
                task = self.tasks.get(client_id)
            if task is not None:
                self.stop_task(task)
        return {}, None

    def gc(self, req: dict):
        """Release the leases of this network whose attachment is not
        among the valid ones (spec 1.1.0 GC)."""
        text = req.get("config")
        if not isinstance(text, str):
            raise CNIError(INTERNAL, "error parsing netconf: no config")
        conf = cfg.load(decode.loads(text.encode()))
        valid = req.get("valid")
        if not isinstance(valid, list):
            raise CNIError(INTERNAL, "valid attachments must be a list")
        keep = {(str(a.get("containerID", "")), str(a.get("ifname", "")))
                for a in valid if isinstance(a, dict)}
        with self.lock:
            tasks = [t for t in self.tasks.values() if t.lease.network == conf.name
                     and (t.lease.container_id, t.lease.ifname) not in keep]
        for task in tasks:
            with self.id_lock(task.lease.client_id):
                log(f"{task.lease.client_id}: not a valid attachment (GC)")
                self.stop_task(task)
        return {}, None

    def handle(self, conn: socket.socket) -> None:
        created = None
        try:
            conn.settimeout(REQUEST_READ_TIMEOUT)
            conn.sendall(BANNER + f"{self.max_wait:g}\n".encode())
            data = b""
            while b"\n" not in data and len(data) < (1 << 20):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            req = json.loads(data.decode("utf-8", "surrogateescape"))
            if not isinstance(req, dict):
                raise ValueError("request is no object")
            method = req.get("method")
            try:
                if method == "Allocate":
                    result, created = self.allocate(req)
                elif method == "Check":
                    result, _ = self.allocate(req, check=True)
                elif method == "Release":
                    result, _ = self.release(req)
                elif method == "Status":
                    result = {}
                elif method == "GC":
                    result, _ = self.gc(req)
                else:
                    raise CNIError(INTERNAL, f"rpc: can't find method DHCP.{method}")
                answer = {"result": result}
            except CNIError as exc:
                answer = {"error": {"code": exc.code, "msg": exc.msg,
                                    "details": exc.details}}
            except Exception as exc:         # never take the daemon down
                log(f"DHCP.{method}: {type(exc).__name__}: {exc}")
                answer = {"error": {"code": INTERNAL, "msg": f"{type(exc).__name__}: {exc}",
                                    "details": ""}}
            conn.settimeout(5.0)
            conn.sendall(json.dumps(answer).encode() + b"\n")
            created = None
        except (OSError, ValueError) as exc:
            log(f"connection: {exc}")
        finally:
            conn.close()
            if created is not None:
                # the plugin went away (killed mid-ADD): nobody got this
                # lease, so it is not kept
                log(f"{created.lease.client_id}: the plugin left before the answer, "
                    "releasing the lease")
                with self.id_lock(created.lease.client_id):
                    self.stop_task(created)

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except InterruptedError:
                continue
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            uid = int.from_bytes(creds[4:8], sys.byteorder)
            if uid != 0:
                log(f"connection from uid {uid} refused")
                conn.close()
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()


# ---------------------------------------------------------------- listening

def listen(path: str) -> socket.socket:
    """The systemd-activated socket, or a new one at `path` (mode 0600, in
    a directory created 0700 and that only root may change)."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS"):
        count = int(os.environ["LISTEN_FDS"])
        if count != 1:
            raise OSError(errno.EINVAL, f"Too many ({count}) FDs passed through socket activation")
        sock = socket.socket(fileno=3)
        os.set_inheritable(3, False)
        return sock
    directory = os.path.dirname(path) or "/"
    fd = files.open_tree(directory, 0o700)
    try:
        st = os.fstat(fd)
        if not held_only_by(st, (0,)):
            raise OSError(errno.EPERM, f"{directory} must be owned by root and writable by "
                          "root only")
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if not stat.S_ISSOCK(existing.st_mode):
                raise OSError(errno.EEXIST, f"{path} exists and is no socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.settimeout(1.0)
                probe.connect(path)
                raise OSError(errno.EADDRINUSE, f"a daemon already listens on {path}")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(path)
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(64)
        return sock
    finally:
        os.close(fd)


def main(argv: list) -> int:
    import gc
    gc.enable()             # the plugin entry point turns it off for short calls
    try:
        flags = parse_flags(argv)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\nUsage of daemon: dhcp daemon [-socketpath PATH] "
                         "[-hostprefix PATH] [-pidfile PATH] [-statedir DIR] [-broadcast] "
                         "[-timeout 10s] [-resendmax 62s] [-resendtimeout 208s]\n")
        return 2
    socket_path = flags["socketpath"] or cfg.DEFAULT_SOCKET_PATH
    pidfile = flags["pidfile"]
    try:
        if pidfile:
            if not pidfile.startswith("/"):
                raise OSError(errno.EINVAL, f'Error writing pidfile "{pidfile}": path not absolute')
            files.write_atomic(pidfile, f"{os.getpid()}".encode(), 0o644)
        daemon = Daemon(flags)
        listener = listen(flags["hostprefix"] + socket_path)
    except OSError as exc:
        log(str(exc.strerror or exc) if exc.filename is None else str(exc))
        return 1

    def on_signal(_signum, _frame):
        daemon.stopping.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.restore()
    log(f"listening on {flags['hostprefix'] + socket_path}")
    try:
        daemon.serve(listener)
    finally:
        listener.close()
        if not os.environ.get("LISTEN_FDS"):
            try:
                os.unlink(flags["hostprefix"] + socket_path)
            except OSError:
                pass
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    log("stopped; live leases are kept in the state directory for the next daemon")
    return 0
