"""sbr: source-based routing for an interface another plugin configured.

ADD (chained: needs prevResult), inside the container namespace, under
the namespace's root-only lock:
- with `table`: one rule `from ADDR lookup TABLE` per address of the
  interface, nothing else;
- without: per address the first free table from 100 (no rule and no
  route uses it), the rule, a default route via the address's gateway in
  that table, and copies of the interface's main-table routes that belong
  to the address; then the interface's routes leave the main table.
If a step fails, everything done so far is undone (rules deleted, the
new tables emptied, the main-table routes put back) before the error is
returned. The result is prevResult.

DEL deletes the rules (of `table`, or of any table) whose source is an
address the interface still has; the tables' routes go with the
interface. A missing namespace or interface is success.

CHECK verifies that every address has its rule (to `table` if set) and,
without `table`, that the table of an address with a gateway still has
the default route via it.
GC and STATUS have nothing to do: all of sbr's state lives in the
container's namespace and dies with it.
"""

import sys

from pycni import fwtools, ipaddr, netlink, netns, skel, undo
from pycni.netlink import link as rtlink, addr as rtaddr, route as rtroute, rule as rtrule
from pycni.netlink import route_msg as rtroutemsg
from pycni.errors import CNIError, INTERNAL
from pycni.result import Result

from . import config

ESRCH, ENOENT = 3, 2


def _log(msg: str) -> None:
    sys.stderr.write(f"sbr: {msg}\n")


def go_error(exc: OSError) -> str:
    """An errno's text as Go prints it ("file exists")."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class _Undo:
    """What ADD changed, to put back if a later step fails: one action on
    ADD's undo.Stack, since the kernel wants a fixed order (the rules in
    reverse, then the tables emptied, then the main table's routes back,
    device routes before the gateway routes that need them)."""

    def __init__(self, nl: netlink.RtNetlink):
        self.nl = nl
        self.rules: list[tuple[str, int]] = []
        self.tables: list[int] = []
        self.removed: list[rtroutemsg.RouteMsg] = []

    def run(self) -> None:
        nl = self.nl
        for source, table in reversed(self.rules):
            self._quietly(f"delete rule from {source} lookup {table}",
                          rtrule.delete_rule_like, nl, source, table)
        if self.tables:
            # The tables were unused before this ADD: empty them again.
            try:
                routes = rtroutemsg.list_route_msgs(nl)
            except OSError as exc:
                _log(f"rollback: cannot list routes: {exc}")
                routes = []
            for route in routes:
                if route.table in self.tables:
                    self._quietly(f"delete route {route.dst} from table {route.table}",
                                  rtroutemsg.delete_route_msg, nl, route)
        # Device routes first: a gateway route needs its subnet's route.
        for route in sorted(self.removed, key=lambda r: bool(r.gw)):
            self._quietly(f"restore route {route.dst}",
                          rtroutemsg.add_route_msg, nl, route, route.table)

    @staticmethod
    def _quietly(what: str, step, *args) -> None:
        try:
            step(*args)
        except OSError as exc:
            _log(f"rollback: cannot {what}: {exc}")


def add_rules(nl: netlink.RtNetlink, ips, table: int, changes: _Undo) -> None:
    """`table` given: the rules only (the reference's lower-case message)."""
    for ip in ips:
        source = config.host_address(ip)
        try:
            rtrule.add_rule(nl, source, table)
        except OSError as exc:
            raise CNIError(INTERNAL, f"failed to add rule: {go_error(exc)}") from None
        changes.rules.append((source, table))


def read_tables(nl: netlink.RtNetlink) -> tuple[set[int], list[rtroutemsg.RouteMsg]]:
    """The tables a rule points to or a route lives in (any family), and
    every route (one dump serves both)."""
    try:
        rules = rtrule.list_rules(nl)
    except OSError as exc:
        raise CNIError(INTERNAL, f"Failed to list all rules: {go_error(exc)}") from None
    try:
        routes = rtroutemsg.list_route_msgs(nl)
    except OSError as exc:
        raise CNIError(INTERNAL, f"Failed to list all routes: {go_error(exc)}") from None
    return {r.table for r in rules} | {r.table for r in routes}, routes


def move_routes(nl: netlink.RtNetlink, ips, ifname: str, changes: _Undo) -> None:
    """No `table`: a table per address, its rule and routes, then the
    interface's routes leave the main table. No address of the interface:
    nothing to route by source, so nothing changes (the reference would
    still take all the interface's routes out of the main table)."""
    if not ips:
        return
    used, every_route = read_tables(nl)
    link = rtlink.get_link(nl, ifname)
    if link is None:
        raise CNIError(INTERNAL, f"Cannot find network interface {ifname}: Link not found")
    # the interface's routes in the main table
    routes = [r for r in every_route
              if r.table == rtroute.RT_TABLE_MAIN and r.oif == link.index]
    plans = config.plan_tables(ips, [(r.prefsrc, r.gw) for r in routes], used)
    for plan in plans:
        try:
            rtrule.add_rule(nl, plan.source, plan.table)
        except OSError as exc:
            raise CNIError(INTERNAL, f"Failed to add rule: {go_error(exc)}") from None
        changes.rules.append((plan.source, plan.table))
        changes.tables.append(plan.table)
        if plan.gateway:
            try:
                rtroutemsg.add_route_msg(nl, rtroutemsg.default_route(
                    plan.gateway, link.index, plan.table), plan.table)
            except OSError as exc:
                raise CNIError(INTERNAL, f"Failed to add default route to {plan.gateway}: "
                               f"{go_error(exc)}") from None
        for i in plan.copies:
            try:
                rtroutemsg.replace_route_msg(nl, routes[i], plan.table)
            except OSError as exc:
                raise CNIError(INTERNAL, f"Failed to readd route: {go_error(exc)}",
                               f"{routes[i].dst} into table {plan.table}") from None
    # Only now: with several addresses in one subnet, each table's
    # gateway must still be reachable through the main table above.
    for route in routes:
        try:
            rtroutemsg.delete_route_msg(nl, route)
        except OSError as exc:
            raise CNIError(INTERNAL, f"Failed to delete route: {go_error(exc)}",
                           f"{route.dst} from the main table") from None
        changes.removed.append(route)


def tidy_rules(nl: netlink.RtNetlink, ifname: str, table: int | None) -> None:
    """DEL: remove the rules whose source is one of the interface's
    addresses; every rule is tried, the last failure is returned."""
    try:
        rules = rtrule.list_rules(nl)
    except OSError as exc:
        raise CNIError(INTERNAL, f"Failed to list all rules to tidy: {go_error(exc)}") from None
    if table is not None:
        rules = [r for r in rules if r.table == table]
    link = rtlink.get_link(nl, ifname)
    if link is None:
        return      # the interface is gone, and its addresses with it
    own = {a.address for a in rtaddr.list_addresses(nl, link.index)}
    failure = None
    for rule in rules:
        if not rule.src or rule.src not in own:
            continue
        try:
            rtrule.delete_rule(nl, rule)
        except OSError as exc:
            if exc.errno in (ESRCH, ENOENT):
                continue    # removed meanwhile
            failure = CNIError(INTERNAL, f"Failed to delete rule {go_error(exc)}",
                               f"from {rule.src} lookup {rule.table}")
            _log(f"{failure}")
    if failure is not None:
        raise failure


def same_address(a: str, b: str) -> bool:
    """Two address texts name the same address ("" matches nothing)."""
    if not a or not b:
        return False
    try:
        return ipaddr.ip_address(a) == ipaddr.ip_address(b)
    except ValueError:
        return False


def missing_rules(rules: list[rtrule.Rule], ips, table: int | None) -> list[str]:
    """CHECK: the addresses that have no `from ADDR lookup ...` rule
    (to `table` when one is configured)."""
    missing = []
    for ip in ips:
        source = config.host_address(ip)
        bits = 128 if ":" in source else 32
        if not any(same_address(r.src, source) and r.src_len == bits and r.dst_len == 0
                   and r.action == rtrule.FR_ACT_TO_TBL
                   and (table is None or r.table == table) for r in rules):
            missing.append(source)
    return missing


def missing_gateways(rules: list[rtrule.Rule], routes: list[rtroutemsg.RouteMsg],
                     ips, oif: int) -> list[str]:
    """CHECK without `table`: the addresses with a gateway whose rule's
    table lacks the default route via that gateway on the interface."""
    missing = []
    for ip in ips:
        if not ip.gateway:
            continue
        source = config.host_address(ip)
        tables = {r.table for r in rules if same_address(r.src, source)}
        if not any(r.table in tables and r.dst_len == 0 and same_address(r.gw, ip.gateway)
                   and r.oif == oif for r in routes):
            missing.append(f"{ip.gateway} (for {source})")
    return missing


class SbrPlugin(skel.Plugin):
    name = "sbr"
    about = "CNI sbr plugin (pycni)"

    def add(self, req: skel.Request) -> Result:
        table = config.load(req.config)
        prev = config.require_prev_result(req.prev_result)
        ips = config.interface_ips(prev, req.ifname)
        with netns.entered(req.netns), fwtools.NetnsMutex(), netlink.RtNetlink() as nl, \
                undo.Stack("sbr") as stack:
            changes = _Undo(nl)
            stack.push(changes.run, what="restoring the rules and routes")
            if table is not None:
                add_rules(nl, ips, table, changes)
            else:
                move_routes(nl, ips, req.ifname, changes)
            stack.commit()
        return prev

    def delete(self, req: skel.Request) -> None:
        table = config.table_for_delete(req.config)
        if not req.netns:
            return      # the runtime's second teardown: the namespace is gone
        try:
            with netns.entered(req.netns), fwtools.NetnsMutex(), netlink.RtNetlink() as nl:
                tidy_rules(nl, req.ifname, table)
        except netns.GONE:
            return

    def check(self, req: skel.Request) -> None:
        table = config.load(req.config)
        prev = config.require_prev_result(req.prev_result)
        ips = config.interface_ips(prev, req.ifname)
        with netns.entered(req.netns), netlink.RtNetlink() as nl:
            link = rtlink.get_link(nl, req.ifname)
            if table is None and link is None:
                raise CNIError(INTERNAL, f"Cannot find network interface {req.ifname}: "
                               "Link not found")
            rules = rtrule.list_rules(nl)
            missing = missing_rules(rules, ips, table)
            if missing:
                where = f"table {table}" if table is not None else "a table"
                raise CNIError(INTERNAL, f"sbr: no rule sends traffic from "
                               f"{', '.join(missing)} of {req.ifname} to {where}")
            if table is None:     # the tables ADD filled: their default routes
                gone = missing_gateways(rules, rtroutemsg.list_route_msgs(nl), ips, link.index)
                if gone:
                    raise CNIError(INTERNAL, f"sbr: no default route via {', '.join(gone)} "
                                   f"in its source table on {req.ifname}")


def main() -> None:
    skel.main(SbrPlugin())


if __name__ == "__main__":
    main()
