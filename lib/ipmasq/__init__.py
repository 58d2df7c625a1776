"""IP masquerading of container traffic (the `ipMasq` key of bridge/ptp).

Traffic from a container address to anything outside its own subnet
(multicast excepted) leaves the host masqueraded. Every backend is a
module of this package with the same four functions (the backend
protocol; callers go through the functions below, never a module):

  available() -> bool                              its tools are installed
  setup(ips, network, ifname, container_id)        ADD; repeatable
  teardown(ips, network, ifname, container_id)     DEL; idempotent, `ips`
                                                   may be empty
  gc(network, valid)                               GC; `valid` = the live
                                                   (container ID, ifname)s
  start_setup(...), start_teardown(...)            the same, begun: an
                                                   object with finish()
                                                   and reap() (below)

Begun and finished (bridge overlaps its firewall exec with its netlink
work): `start_setup` / `start_teardown` return at once, the backend's
first exec running if it has one worth starting early (iptables' one-batch
fast path; nftables has none: a read, then a transaction computed from
it, all done in finish()). `finish()` waits for it and completes the step,
raising what setup/teardown raise. On every other path the caller must
`reap()` (wait for what still runs; whether any of it may have applied):
`undo_setup` is the rollback of a started setup.

The default backend is fwtools.default_backend's choice (the reference's:
iptables unless only nftables is installed). The two backends:

  iptables  per attachment a nat chain `CNI-<hash(network+id)>` holding
            "-d <subnet> ACCEPT" and "! -d <multicast> MASQUERADE", jumped
            to from POSTROUTING for each container IP. All rules carry the
            comment `name: "<network>" id: "<id>"` (same names and rules as
            the reference, so either implementation can delete the other's).
  nftables  `table inet cni_plugins_masquerade`: one rule per attachment IP
            in chain masq_checks, identified by a hashed comment.

`ips` are CIDRs as in a CNI result ("10.1.2.3/24").
"""

from ..digest import hashed_name

BACKENDS = ("iptables", "nftables")
CHAIN_PREFIX = "CNI-"
CHAIN_LEN = 28      # iptables chain names are at most 28 characters


def chain_name(network: str, container_id: str) -> str:
    """`CNI-` + sha512(network + id) in hex, cut to 28 characters."""
    return hashed_name(CHAIN_PREFIX, network + container_id, CHAIN_LEN)


def go_quote(text: str) -> str:
    """Go's %q for the printable ASCII network names and IDs allow."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(network: str, container_id: str) -> str:
    return f"name: {go_quote(network)} id: {go_quote(container_id)}"


def default_backend() -> str:
    """The backend used when none is configured (fwtools.default_backend)."""
    from ..fwtools import default_backend
    return default_backend()


def _backend_module(name: str):
    if name == "iptables":
        from . import iptables
        return iptables
    if name == "nftables":
        from . import nftables
        return nftables
    from ..errors import CNIError, INVALID_NETWORK_CONFIG
    raise CNIError(INVALID_NETWORK_CONFIG, f'unknown ipmasq backend "{name}"')


def available(backend: str | None) -> bool:
    """Are the tools of `backend` (default: the automatic choice) installed?"""
    return _backend_module(backend or default_backend()).available()


def setup(backend: str | None, ips: list[str], network: str, ifname: str,
          container_id: str) -> None:
    _backend_module(backend or default_backend()).setup(ips, network, ifname, container_id)


class Deferred:
    """A started step with nothing running early: `finish()` runs it."""

    __slots__ = ("_step", "_applied")

    def __init__(self, step):
        self._step = step
        self._applied = False

    def finish(self) -> None:
        self._step()
        self._applied = True

    def reap(self) -> bool:
        return self._applied


def start_setup(backend: str | None, ips: list[str], network: str, ifname: str,
                container_id: str):
    """`setup` begun (see the module docstring)."""
    return _backend_module(backend or default_backend()).start_setup(
        ips, network, ifname, container_id)


def undo_setup(started, ips: list[str], network: str, ifname: str, container_id: str) -> None:
    """The rollback of `start_setup(...)`, finished or not: wait for what
    still runs, then remove whatever of it may have applied."""
    if started.reap():
        teardown(ips, network, ifname, container_id)


def _installed() -> list:
    from . import iptables, nftables
    return [module for module in (iptables, nftables) if module.available()]


def _each_backend(action, modules: list | None = None) -> None:
    """Run `action(module)` for every installed backend (or `modules`);
    collect failures."""
    from ..errors import CNIError, INTERNAL
    errors = []
    for module in _installed() if modules is None else modules:
        try:
            action(module)
        except CNIError as err:
            errors.append(f"{err.msg}: {err.details}" if err.details else err.msg)
    if errors:
        raise CNIError(INTERNAL, "; ".join(errors))


def teardown(ips: list[str], network: str, ifname: str, container_id: str) -> None:
    """Remove what `setup` made with any backend (the attachment may have
    been created with another backend or version). Idempotent."""
    _each_backend(lambda m: m.teardown(ips, network, ifname, container_id))


class StartedTeardown:
    """`teardown` begun in every installed backend (see the module
    docstring); `finish()` reports failures together, as `teardown`."""

    __slots__ = ("args", "_started")

    def __init__(self, ips: list[str], network: str, ifname: str, container_id: str):
        self.args = (ips, network, ifname, container_id)
        self._started: dict = {}
        try:
            for module in _installed():
                self._started[module] = module.start_teardown(*self.args)
        except BaseException:
            self.reap()
            raise

    def finish(self) -> None:
        started = self._started
        _each_backend(lambda m: started[m].finish(), list(started))

    def reap(self) -> bool:
        applied = False
        for step in self._started.values():
            applied = step.reap() or applied
        return applied


def start_teardown(ips: list[str], network: str, ifname: str,
                   container_id: str) -> StartedTeardown:
    """`teardown` begun (see the module docstring)."""
    return StartedTeardown(ips, network, ifname, container_id)


def gc(network: str, valid: list[tuple[str, str]]) -> None:
    """Remove the rules of `network`'s attachments that are not in `valid`
    ((container ID, ifname) pairs), in every backend."""
    _each_backend(lambda m: m.gc(network, valid))
