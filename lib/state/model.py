"""The records of `pycni state` and every decision on them (pure).

An allocation's owner is the cached attachment with its container ID and
interface (a legacy store file, container ID only, is owned by any cached
attachment of that ID). Owner states:

  live      cached, and the netns of the cached result exists
  unknown   cached, but neither the cache entry (libcni writes `netns`
            since 1.2) nor its result (`interfaces[].sandbox`) names a netns:
            nothing to test, taken as alive, GC keeps it
  stale     cached, and its netns is gone (or is no network namespace):
            the container died without a DEL (a reboot, a crashed runtime)
  no-cache  no cache entry at all: the runtime never cached it or dropped
            the entry; GC with the cache's attachments frees it

`pycni gc` declares the live and unknown attachments valid, as a runtime
passes the sandboxes it still runs. `plan_gc` is what that GC removes,
computed from a state; `diff` is what a real run removed.
"""

from dataclasses import dataclass, field

LIVE = "live"
UNKNOWN = "unknown"
STALE = "stale"
NO_CACHE = "no-cache"

NETNS_PRESENT = "present"
NETNS_GONE = "gone"
NETNS_NOT_NETNS = "not a network namespace"


@dataclass(frozen=True)
class Allocation:
    """One host-local store file: `ip` held by (container_id, ifname);
    ifname None for a legacy file that names only the container."""
    ip: str
    container_id: str
    ifname: str | None = None
    # seconds since the file was written (None: not known); not part of
    # the allocation's identity
    age: float | None = field(default=None, compare=False)

    @property
    def content(self) -> str:
        """The file content, as host-local writes it."""
        return self.container_id if self.ifname is None \
            else f"{self.container_id}\r\n{self.ifname}"


@dataclass
class CachedAttachment:
    """One libcni cache entry of the network."""
    container_id: str
    ifname: str
    netns: str = ""
    netns_state: str = ""       # NETNS_*; "" when the entry names no netns;
                                # another text: why it could not be told
    ips: list[str] = field(default_factory=list)         # CIDRs of the cached result
    host_links: list[str] = field(default_factory=list)  # its interfaces outside the sandbox

    @property
    def key(self) -> tuple[str, str]:
        return (self.container_id, self.ifname)

    @property
    def status(self) -> str:
        if not self.netns:
            return UNKNOWN
        if self.netns_state in (NETNS_GONE, NETNS_NOT_NETNS):
            return STALE
        if self.netns_state == NETNS_PRESENT:
            return LIVE
        return UNKNOWN          # could not be told: never collected

    @property
    def reason(self) -> str:
        if not self.netns:
            return "neither the cache entry nor its result names a netns"
        if self.netns_state == NETNS_PRESENT:
            return f"netns {self.netns}"
        if self.netns_state == NETNS_GONE:
            return f"netns {self.netns} is gone"
        if self.netns_state == NETNS_NOT_NETNS:
            return f"{self.netns} is not a network namespace"
        return f"netns {self.netns}: {self.netns_state}"


@dataclass(frozen=True)
class HostObject:
    """Something on the host that belongs to one attachment.

    kind: "ipmasq", "portmap" or "veth"; where: "iptables nat",
    "ip6tables nat", "nft inet cni_plugins_masquerade" or "link"; name: the
    chain, the rule or the link; ifname "" when the object names only the
    container (iptables chains), as the plugins' own GC keys them."""
    kind: str
    where: str
    name: str
    network: str
    container_id: str
    ifname: str = ""
    detail: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.where, self.name, self.network, self.container_id)


@dataclass
class NetworkState:
    name: str
    store_dir: str = ""
    allocations: list[Allocation] = field(default_factory=list)
    attachments: list[CachedAttachment] = field(default_factory=list)
    host_objects: list[HostObject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)    # what could not be read
    _index: tuple | None = field(default=None, repr=False, compare=False)

    def owners(self) -> tuple[dict, dict]:
        """({(ID, ifname): attachment}, {ID: first attachment}), built once
        (a node's store can hold tens of thousands of addresses)."""
        if self._index is None or self._index[0] != len(self.attachments):
            pairs, ids = {}, {}
            for att in self.attachments:
                pairs.setdefault(att.key, att)
                ids.setdefault(att.container_id, att)
            self._index = (len(self.attachments), pairs, ids)
        return self._index[1], self._index[2]


@dataclass
class Removal:
    """What a GC removes (or removed)."""
    network: str
    attachments: list[CachedAttachment] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    host_objects: list[HostObject] = field(default_factory=list)
    # what only the plugins' GC removes (not the DEL of a stale attachment):
    # Allocations and HostObject keys. A plugin without GC (the reference
    # host-local v1.9 has none) leaves these.
    by_gc: set = field(default_factory=set)

    def empty(self) -> bool:
        return not (self.attachments or self.allocations or self.host_objects)


# --- owners ------------------------------------------------------------------

def owner(state: NetworkState, container_id: str, ifname: str | None) -> CachedAttachment | None:
    """The cached attachment that owns an allocation or object."""
    pairs, ids = state.owners()
    return pairs.get((container_id, ifname)) if ifname else ids.get(container_id)


def owner_status(state: NetworkState, container_id: str, ifname: str | None) -> tuple[str, str]:
    """(status, reason) of the owner of an allocation or host object."""
    att = owner(state, container_id, ifname)
    if att is None:
        return NO_CACHE, "no libcni cache entry"
    return att.status, att.reason


def valid_attachments(state: NetworkState, min_age: float = 0) -> list[tuple[str, str]]:
    """What `pycni gc` declares valid: cached attachments not known dead,
    and the owners without a cache entry of addresses reserved less than
    `min_age` seconds ago: an ADD in flight has its address before the
    runtime caches its result, and must not lose it."""
    valid = [att.key for att in state.attachments if att.status in (LIVE, UNKNOWN)]
    seen = set(valid)
    for a in sorted(state.allocations, key=lambda a: _ip_key(a.ip)):
        if a.ifname and a.age is not None and a.age < min_age \
                and owner(state, a.container_id, a.ifname) is None \
                and (a.container_id, a.ifname) not in seen:
            valid.append((a.container_id, a.ifname))
            seen.add((a.container_id, a.ifname))
    return valid


def _kept(container_id: str, ifname: str | None, pairs: set, ids: set) -> bool:
    """The plugins' GC rule: an owner naming its interface is matched by
    (ID, interface), one naming only the container by its ID."""
    return (container_id, ifname) in pairs if ifname else container_id in ids


def plan_gc(state: NetworkState, plugins_gc: bool, min_age: float = 0) -> Removal:
    """What GC with the valid attachments of `state` removes.

    Each cached attachment that is not valid gets a DEL: its cache entry,
    its addresses and its host objects go. With `plugins_gc` (a 1.1.0
    list that does not disable GC) every plugin then gets GC: each address
    and each attributable rule of the network whose owner is not valid
    goes too (host-local's, portmap's and ipMasq's GC rules)."""
    from pycni.ipam.host_local.gc import stale_allocations

    valid = set(valid_attachments(state, min_age))
    valid_ids = {cid for cid, _ in valid}
    stale = [att for att in state.attachments if att.key not in valid]
    stale_pairs = {att.key for att in stale}
    stale_ids = {att.container_id for att in stale}

    by_del = [a for a in state.allocations
              if (a.ifname and (a.container_id, a.ifname) in stale_pairs)
              or (not a.ifname and a.container_id in stale_ids
                  and a.container_id not in valid_ids)]
    # (a legacy file of a stale ID goes with that ID's DEL unless a valid
    # attachment shares the ID: host-local's DEL then finds the (ID,
    # interface) file first and leaves the legacy one)
    allocations = list(by_del)
    deleted = set(by_del)
    by_gc = set()
    if plugins_gc:
        doomed = set(stale_allocations({a.ip: a.content for a in state.allocations}, valid))
        for a in state.allocations:
            if a.ip in doomed and a not in deleted:
                allocations.append(a)
                by_gc.add(a)

    objects = []
    for obj in state.host_objects:
        if obj.network != state.name:
            continue
        if obj.kind == "veth":
            goes = (obj.container_id, obj.ifname) in stale_pairs
        else:
            goes = _kept(obj.container_id, obj.ifname or None, stale_pairs, stale_ids)
        if not goes and obj.kind != "veth" and plugins_gc \
                and not _kept(obj.container_id, obj.ifname or None, valid, valid_ids):
            goes = True
            by_gc.add(obj.key)
        if goes:
            objects.append(obj)
    return Removal(state.name, stale, allocations, objects, by_gc)


def diff(before: NetworkState, after: NetworkState) -> Removal:
    """What is in `before` and no longer in `after`."""
    atts = {a.key for a in after.attachments}
    allocs = set(after.allocations)
    objects = {o.key for o in after.host_objects}
    return Removal(before.name,
                   [a for a in before.attachments if a.key not in atts],
                   [a for a in before.allocations if a not in allocs],
                   [o for o in before.host_objects if o.key not in objects])


# --- output -------------------------------------------------------------------

def _ip_key(ip: str):
    """Addresses in numeric order (IPv4 first), anything else after."""
    import _socket
    for rank, family in ((0, _socket.AF_INET), (1, _socket.AF_INET6)):
        try:
            return (rank, _socket.inet_pton(family, ip), ip)
        except (OSError, ValueError):
            continue
    return (2, b"", ip)


def state_json(state: NetworkState) -> dict:
    out = {"name": state.name, "storeDir": state.store_dir, "allocations": [],
           "attachments": [], "hostObjects": []}
    for a in sorted(state.allocations, key=lambda a: _ip_key(a.ip)):
        status, reason = owner_status(state, a.container_id, a.ifname)
        out["allocations"].append({"ip": a.ip, "containerID": a.container_id,
                                   "ifname": a.ifname, "owner": status, "reason": reason})
    for att in state.attachments:
        out["attachments"].append({"containerID": att.container_id, "ifname": att.ifname,
                                   "netns": att.netns, "status": att.status,
                                   "reason": att.reason, "ips": list(att.ips)})
    for obj in state.host_objects:
        status, reason = owner_status(state, obj.container_id, obj.ifname or None)
        out["hostObjects"].append({"kind": obj.kind, "where": obj.where, "name": obj.name,
                                   "containerID": obj.container_id, "ifname": obj.ifname,
                                   "detail": obj.detail, "owner": status, "reason": reason})
    if state.problems:
        out["problems"] = list(state.problems)
    return out


def removal_json(removal: Removal) -> dict:
    return {"name": removal.network,
            "attachments": [{"containerID": a.container_id, "ifname": a.ifname,
                             "netns": a.netns} for a in removal.attachments],
            "allocations": [{"ip": a.ip, "containerID": a.container_id, "ifname": a.ifname,
                             **({"by": "GC"} if a in removal.by_gc else {})}
                            for a in sorted(removal.allocations, key=lambda a: _ip_key(a.ip))],
            "hostObjects": [{"kind": o.kind, "where": o.where, "name": o.name,
                             "containerID": o.container_id, "ifname": o.ifname,
                             **({"by": "GC"} if o.key in removal.by_gc else {})}
                            for o in removal.host_objects]}


def shown(text) -> str:
    """`text` safe for a terminal: what the store, the cache or a firewall
    comment holds is not ours to print raw (an escape sequence in a
    container ID could rewrite the screen); non-printable characters are
    shown as escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    rows = [[shown(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip()
            for r in rows]


def _owner_text(container_id: str, ifname: str | None) -> str:
    return f"{container_id} {ifname}" if ifname else f"{container_id}, any interface"


def state_text(state: NetworkState) -> str:
    counts = {}
    for a in state.allocations:
        status = owner_status(state, a.container_id, a.ifname)[0]
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    count = len(state.allocations)
    lines = [shown(f"network {state.name}: {count} address{'' if count == 1 else 'es'} "
                   f"({summary})" + (f" in {state.store_dir}" if state.store_dir else ""))]
    rows = []
    for a in sorted(state.allocations, key=lambda a: _ip_key(a.ip)):
        status, reason = owner_status(state, a.container_id, a.ifname)
        rows.append([a.ip, a.container_id, a.ifname or "-", status, reason])
    lines += _table(rows)
    holding = {(a.container_id, a.ifname) for a in state.allocations}
    rows = [[att.container_id, att.ifname, att.status, att.reason]
            for att in state.attachments
            if (att.container_id, att.ifname) not in holding
            and (att.container_id, None) not in holding]
    if rows:
        lines.append("  cached attachments holding no address:")
        lines += _table(rows, "    ")
    if state.host_objects:
        lines.append("  host objects:")
        rows = []
        for obj in state.host_objects:
            status = owner_status(state, obj.container_id, obj.ifname or None)[0]
            rows.append([obj.kind, obj.where, obj.name, obj.container_id,
                         obj.ifname or "-", status, obj.detail])
        lines += _table(rows, "    ")
    for problem in state.problems:
        lines.append(f"  ! {shown(problem)}")
    return "\n".join(lines) + "\n"


def removal_text(removal: Removal, verb: str) -> str:
    """One line per removed thing, e.g. verb "removed" or "would remove"."""
    lines = []
    for att in removal.attachments:
        lines.append(f"{verb} cache entry {removal.network}-{att.container_id}-{att.ifname}"
                     f" ({att.reason})")
    gc_note = "; by the plugins' GC"
    for a in sorted(removal.allocations, key=lambda a: _ip_key(a.ip)):
        note = gc_note if a in removal.by_gc else ""
        lines.append(f"{verb} address {a.ip} ({_owner_text(a.container_id, a.ifname)}{note})")
    for o in removal.host_objects:
        note = gc_note if o.key in removal.by_gc else ""
        lines.append(f"{verb} {o.kind} {o.where} {o.name} "
                     f"({_owner_text(o.container_id, o.ifname or None)}{note})")
    if not lines:
        lines.append(f"network {removal.network}: nothing to remove")
    return "\n".join(shown(line) for line in lines) + "\n"
