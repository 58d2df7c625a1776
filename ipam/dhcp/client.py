"""The daemon's DHCP exchanges, on a UDP socket made inside the container's netns.

The calling thread enters the namespace (pycni.netns.entered: this
thread only, always back), looks the interface up (bringing it up when it
is down, as the reference does), and opens a UDP socket on port 68 bound
to the interface (SO_BINDTODEVICE); the socket stays in that namespace
after the thread has left it, so the daemon itself never runs inside a
container. Requests before an address is configured carry the BOOTP
broadcast flag, so the server's answers reach this socket as broadcasts.

Retransmission is the reference's (lease.go backoffRetry): wait `timeout`
for an answer, then resend after 2 s (+-1 s) four times, then 4 s doubling
up to `resend_max` (+-1 s), until `resend_timeout` has passed.
"""

import errno
import os
import random
import select
import socket
import time

from pycni import dhcp4, netlink, netns
from pycni.netlink import link as rtlink, addr as rtaddr

IFNAMSIZ = 16


class DHCPError(Exception):
    """An exchange failed; str() is the message the plugin reports."""


class Nak(DHCPError):
    pass


class Stopped(DHCPError):
    pass


class Params:
    def __init__(self, timeout: float = 10.0, resend_max: float = 62.0,
                 resend_timeout: float = 208.0, broadcast: bool = False):
        self.timeout = timeout
        self.resend_max = resend_max
        self.resend_timeout = resend_timeout
        self.broadcast = broadcast


def open_socket(netns_path: str, ifname: str, bring_up: bool = True):
    """(socket, mac, IPv4 addresses) for `ifname` in the namespace at
    `netns_path`. DHCPError when the interface is not there."""
    with netns.entered(netns_path):
        with netlink.RtNetlink() as nl:
            link = rtlink.get_link(nl, ifname)
            if link is None:
                raise DHCPError(f'error looking up "{ifname}": Link not found')
            if bring_up and not link.is_up:
                rtlink.set_link_up(nl, link.index)
                _wait_carrier(nl, ifname)
            addresses = [a.address for a in rtaddr.list_addresses(nl, link.index,
                                                                    socket.AF_INET)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            sock.bind(("0.0.0.0", dhcp4.CLIENT_PORT))
        except BaseException:
            sock.close()
            raise
    return sock, link.mac, addresses


CARRIER_WAIT = 2.0


def _wait_carrier(nl, ifname: str) -> None:
    """After bringing a link up, wait (at most CARRIER_WAIT) for its
    carrier: a DISCOVER sent before it is lost, and the first resend
    comes only after -timeout plus 2 s."""
    end = time.monotonic() + CARRIER_WAIT
    while time.monotonic() < end:
        link = rtlink.get_link(nl, ifname)
        if link is None or link.flags & rtlink.IFF_RUNNING:
            return
        time.sleep(0.01)


def link_alive(netns_path: str, netns_id, ifname: str, mac: str) -> bool:
    """The namespace at `netns_path` is still the one of the lease and
    holds `ifname` with `mac`."""
    try:
        fd = netns.open_netns(netns_path)
    except Exception:
        return False
    try:
        st = os.fstat(fd)
        if [st.st_dev, st.st_ino] != list(netns_id):
            return False
    finally:
        os.close(fd)
    try:
        with netns.entered(netns_path):
            with netlink.RtNetlink() as nl:
                link = rtlink.get_link(nl, ifname)
    except Exception:
        return False
    return link is not None and (not mac or link.mac == mac)


def set_link_down(netns_path: str, ifname: str) -> None:
    with netns.entered(netns_path):
        with netlink.RtNetlink() as nl:
            link = rtlink.get_link(nl, ifname)
            if link is not None:
                rtlink.set_link_up(nl, link.index, False)


def _jitter(span: float) -> float:
    return span * (2.0 * random.random() - 1.0)


class Exchange:
    """One client's exchanges on one socket."""

    def __init__(self, sock, mac: str, client_id: str, options, params: Params,
                 stop=None, addresses=()):
        self.sock = sock
        self.addresses = list(addresses)     # the interface's IPv4 addresses
        self.mac = mac
        self.mac_raw = dhcp4.mac_bytes(mac)
        self.client_id = client_id
        self.options = list(options)
        self.params = params
        self.stop = stop            # a threading.Event: set -> Stopped

    def _opts(self, *head) -> list:
        """The request's options: the client ID, then the configured ones
        (a configured code replaces the client ID, as in the reference),
        then the ones of this message (requested address, server ID),
        which nothing configured replaces."""
        merged: dict = {dhcp4.OPT_CLIENT_ID: dhcp4.client_id_option(self.client_id)}
        for code, value in self.options + list(head):
            merged[code] = value
        return list(merged.items())

    def _send(self, packet: bytes, dest: str) -> None:
        try:
            self.sock.sendto(packet, (dest, dhcp4.SERVER_PORT))
        except OSError as exc:
            raise DHCPError(f"sending a DHCP message to {dest} failed: {exc.strerror}") from None

    def _receive(self, xid: int, types, until: float, server: str = ""):
        """A reply for `xid` of one of `types` (from `server` if given), or None."""
        while True:
            if self.stop is not None and self.stop.is_set():
                raise Stopped("stopped")
            left = until - time.monotonic()
            if left <= 0:
                return None
            poller = select.poll()          # not select(): a busy daemon has fds past 1024
            poller.register(self.sock, select.POLLIN)
            if not poller.poll(int(min(left, 0.2) * 1000) + 1):
                continue
            try:
                data = self.sock.recv(4096)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                raise DHCPError(f"receiving DHCP messages failed: {exc.strerror}") from None
            try:
                msg = dhcp4.parse(data)
            except dhcp4.BadMessage:
                continue
            if (msg.op != dhcp4.BOOTREPLY or msg.xid != xid or msg.chaddr[:6] != self.mac_raw
                    or msg.type not in types):
                continue
            if server and msg.type != dhcp4.NAK and msg.server_id and msg.server_id != server:
                continue
            return data, msg

    def _sleep(self, seconds: float, deadline: float) -> None:
        seconds = max(0.0, min(seconds, deadline - time.monotonic()))
        if self.stop is not None:
            if self.stop.wait(seconds):
                raise Stopped("stopped")
        else:
            time.sleep(seconds)

    def _retrying(self, build, dest: str, types, deadline: float, server: str = ""):
        """Send build(xid) to `dest` until an answer comes or `deadline`."""
        delay, fast = 4.0, 4
        xid = random.getrandbits(32)
        while True:
            self._send(build(xid), dest)
            got = self._receive(xid, types, min(time.monotonic() + self.params.timeout, deadline),
                                server)
            if got is not None:
                return got
            if time.monotonic() >= deadline:
                raise DHCPError("no more tries")
            if fast:
                pause = 2.0 + _jitter(1.0)
                fast -= 1
            else:
                pause = delay + _jitter(1.0)
                if delay < self.params.resend_max:
                    delay *= 2
            self._sleep(pause, deadline)
            if time.monotonic() >= deadline:
                raise DHCPError("no more tries")

    def acquire(self, deadline: float | None = None) -> bytes:
        """DISCOVER, OFFER, REQUEST, ACK: the raw DHCPACK. A NAK starts
        over (RFC 2131: back to INIT); three NAKs in a row fail (Nak)."""
        if deadline is None:
            deadline = time.monotonic() + self.params.resend_timeout
        naks = 0
        while True:
            def discover(xid):
                return dhcp4.build(dhcp4.DISCOVER, xid, self.mac, self._opts(), broadcast=True)
            _, offer = self._retrying(discover, "255.255.255.255", (dhcp4.OFFER,), deadline)
            server = offer.server_id

            def request(xid, offer=offer, server=server):
                head = [(dhcp4.OPT_REQUESTED_IP, dhcp4.ip_bytes(offer.yiaddr))]
                if server:
                    head.append((dhcp4.OPT_SERVER_ID, dhcp4.ip_bytes(server)))
                return dhcp4.build(dhcp4.REQUEST, xid, self.mac, self._opts(*head),
                                   broadcast=True)
            raw, reply = self._retrying(request, "255.255.255.255", (dhcp4.ACK, dhcp4.NAK),
                                        deadline, server)
            if reply.type == dhcp4.ACK:
                return raw
            naks += 1
            text = reply.message_text()
            if naks >= 3 or time.monotonic() >= deadline:
                raise Nak(f"DHCP server {server or reply.siaddr} sent DHCPNAK"
                          + (f": {text}" if text else ""))

    def renew(self, address: str, server: str, deadline: float, rebinding: bool = False) -> bytes:
        """REQUEST with ciaddr: unicast to the server (renewing) or
        broadcast (rebinding); the raw DHCPACK, Nak on a DHCPNAK."""
        def request(xid):
            return dhcp4.build(dhcp4.REQUEST, xid, self.mac, self._opts(), ciaddr=address,
                               broadcast=rebinding)
        dest = "255.255.255.255" if rebinding or not server else server
        raw, reply = self._retrying(request, dest, (dhcp4.ACK, dhcp4.NAK), deadline,
                                    "" if rebinding else server)
        if reply.type == dhcp4.NAK:
            raise Nak(f"DHCP server {server} sent DHCPNAK" +
                      (f": {reply.message_text()}" if reply.message_text() else ""))
        return raw

    def release(self, address: str, server: str) -> None:
        """DHCPRELEASE, unicast to the server; broadcast when the address
        was never configured on the interface (an ADD that did not finish:
        without a source address the unicast could not leave)."""
        opts = [(dhcp4.OPT_SERVER_ID, dhcp4.ip_bytes(server)),
                (dhcp4.OPT_CLIENT_ID, dhcp4.client_id_option(self.client_id))]
        dest = server if address in self.addresses else "255.255.255.255"
        self._send(dhcp4.build(dhcp4.RELEASE, random.getrandbits(32), self.mac, opts,
                               ciaddr=address), dest)
