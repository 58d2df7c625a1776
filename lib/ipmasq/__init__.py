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


def _each_backend(action) -> None:
    """Run `action(module)` for every installed backend; collect failures."""
    from ..errors import CNIError, INTERNAL
    from . import iptables, nftables
    errors = []
    for module, present in ((iptables, iptables.available()),
                            (nftables, nftables.available())):
        if not present:
            continue
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


def gc(network: str, valid: list[tuple[str, str]]) -> None:
    """Remove the rules of `network`'s attachments that are not in `valid`
    ((container ID, ifname) pairs), in every backend."""
    _each_backend(lambda m: m.gc(network, valid))
