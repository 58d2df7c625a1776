"""A lease as the daemon keeps it, and the result it gives: pure.

`Lease` is what the daemon persists per attachment (one file per client
ID in its state directory) and reloads after a restart. `result` is the
reference's Allocate result: the address with the ACK's subnet mask, the
first router as gateway, routes from option 121 (RFC 3442: then 33 and
the router are ignored), else option 33 and a default route via the
router; `priority` set on every route when the config has one.
`next_step` is the renewal schedule (RFC 2131 4.4.5).
"""

from pycni import dhcp4
from pycni.errors import CNIError, INTERNAL
from pycni.result import IPConfig, Result, Route

SCOPE_LINK = 253
FIELDS = ("client_id", "netns", "netns_id", "ifname", "mac", "options", "ack",
          "server_id", "address", "bound_at", "lease_time", "t1", "t2",
          "container_id", "network")


class Lease:
    """One attachment's lease. `ack` is the raw DHCPACK (hex when stored);
    times are wall-clock seconds (time.time()), so they survive a restart."""

    def __init__(self, client_id: str, netns: str, netns_id: list, ifname: str, mac: str,
                 options: list):
        self.client_id = client_id
        self.netns = netns
        self.netns_id = list(netns_id)      # [st_dev, st_ino] of the namespace
        self.ifname = ifname
        self.mac = mac
        self.options = [(int(c), bytes(v)) for c, v in options]
        self.ack = b""
        self.server_id = ""
        self.address = ""
        self.bound_at = 0.0
        self.lease_time = 0
        self.t1 = 0
        self.t2 = 0
        self.container_id = ""      # the attachment, for GC
        self.network = ""

    def commit(self, ack_raw: bytes, now: float) -> None:
        """Take a DHCPACK: address, server and times (defaults as the reference)."""
        msg = dhcp4.parse(ack_raw)
        self.ack = bytes(ack_raw)
        self.address = msg.yiaddr
        self.server_id = msg.server_id or self.server_id
        self.lease_time, self.t1, self.t2 = msg.lease_times()
        self.bound_at = now

    @property
    def expires_at(self) -> float:
        return self.bound_at + self.lease_time

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in FIELDS}
        out["ack"] = self.ack.hex()
        out["options"] = [[c, v.hex()] for c, v in self.options]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Lease":
        lease = cls(str(data["client_id"]), str(data["netns"]), list(data["netns_id"]),
                    str(data["ifname"]), str(data["mac"]),
                    [(int(c), bytes.fromhex(v)) for c, v in data["options"]])
        lease.ack = bytes.fromhex(data["ack"])
        lease.server_id = str(data["server_id"])
        lease.address = str(data["address"])
        lease.bound_at = float(data["bound_at"])
        lease.lease_time = int(data["lease_time"])
        lease.t1 = int(data["t1"])
        lease.t2 = int(data["t2"])
        lease.container_id = str(data.get("container_id", ""))
        lease.network = str(data.get("network", ""))
        dhcp4.parse(lease.ack)      # refuse a record whose ACK does not parse
        return lease


def result(ack_raw: bytes, priority: int = 0) -> Result:
    """The Allocate result of a DHCPACK (CNIError when it has no subnet mask)."""
    msg = dhcp4.parse(ack_raw)
    mask = msg.options.get(dhcp4.OPT_SUBNET_MASK, b"")
    prefix = dhcp4.mask_prefix(mask) if len(mask) == 4 else None
    if prefix is None:
        raise CNIError(INTERNAL, "DHCP option Subnet Mask not found in DHCPACK")
    routers = msg.ip_list(dhcp4.OPT_ROUTER)
    gateway = routers[0] if routers else ""
    routes: list[Route] = []
    classless = msg.options.get(dhcp4.OPT_CLASSLESS_ROUTES, b"")
    parsed = []
    if classless:
        try:
            parsed = dhcp4.classless_routes(classless)
        except dhcp4.BadMessage:
            parsed = []
    if parsed:
        for dst, gw in parsed:
            if gw == "0.0.0.0":
                routes.append(Route(dst=dst, scope=SCOPE_LINK))
            else:
                routes.append(Route(dst=dst, gw=gw))
    else:
        for dst, gw in dhcp4.static_routes(msg.options.get(dhcp4.OPT_STATIC_ROUTES, b"")):
            routes.append(Route(dst=dst, gw=gw))
        if gateway:
            routes.append(Route(dst="0.0.0.0/0", gw=gateway))
    if priority:
        for r in routes:
            r.priority = priority
    return Result(ips=[IPConfig(address=f"{msg.yiaddr}/{prefix}", gateway=gateway)],
                  routes=routes)


def next_step(lease: Lease, now: float) -> tuple[str, float]:
    """What to do next and when: ("renew", t1), ("rebind", t2),
    ("expire", end); the time is absolute. Renewing and rebinding go on
    until the next stage's time."""
    t1 = lease.bound_at + lease.t1
    t2 = lease.bound_at + lease.t2
    end = lease.expires_at
    if now < t1:
        return "renew", t1
    if now < t2:
        return "renew", now
    if now < end:
        return "rebind", now
    return "expire", now
