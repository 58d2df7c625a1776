"""extra-routes: ADD, CHECK and DEL in the container's network namespace.

ADD (chained: needs prevResult) adds each route on CNI_IFNAME; if one
fails, the routes added so far are removed again before the error is
returned. The result is prevResult with the routes added. CHECK verifies
that every route is in the main table. DEL removes them; a namespace or
an interface that is gone is success (the routes went with it).
"""

import sys

from pycni import netlink, netns, skel
from pycni.netlink import link as rtlink, route as rtroute
from pycni.checks import check_routes
from pycni.errors import CNIError, INTERNAL
from pycni.result import Result

from . import config

EEXIST, ENOENT, ESRCH = 17, 2, 3


def _link(nl, ifname: str):
    link = rtlink.get_link(nl, ifname)
    if link is None:
        raise CNIError(INTERNAL, f'extra-routes: no interface "{ifname}" in the container')
    return link


def _delete(nl, route, oif: int) -> None:
    body = rtroute.route_body(route.dst, route.gw, oif, priority=route.priority)
    nl.request(rtroute.RTM_DELROUTE, 0, body)


class ExtraRoutes(skel.Plugin):
    name = "extra-routes"
    about = "CNI extra-routes plugin (an example pycni plugin)"

    def add(self, req: skel.Request) -> Result:
        routes = config.load(req.config)
        prev = req.prev_result
        if prev is None:
            raise config.invalid("extra-routes must be called as a chained plugin",
                                 "it adds routes to an interface an earlier plugin configured")
        routes = config.plan(routes, prev, req.ifname)
        with netns.entered(req.netns), netlink.RtNetlink() as nl:
            link = _link(nl, req.ifname)
            added = []
            try:
                for r in routes:
                    try:
                        rtroute.add_route_ecmp(nl, r.dst, gw=r.gw, oif=link.index,
                                               priority=r.priority)
                    except netlink.NetlinkError as exc:
                        if exc.errno == EEXIST:
                            continue    # this very route is there already: not ours to undo
                        raise CNIError(INTERNAL, f"extra-routes: failed to add route {r.dst} "
                                       f"via {r.gw}", exc.strerror) from None
                    added.append(r)
            except BaseException:
                for r in reversed(added):
                    try:
                        _delete(nl, r, link.index)
                    except OSError as exc:
                        sys.stderr.write(f"extra-routes: rollback: route {r.dst}: {exc}\n")
                raise
        return config.build_result(prev, routes, req.cni_version)

    def check(self, req: skel.Request) -> None:
        routes = config.load(req.config)
        prev = req.prev_result
        if prev is None:
            raise config.invalid("extra-routes must be called as a chained plugin")
        routes = config.plan(routes, prev, req.ifname)
        with netns.entered(req.netns), netlink.RtNetlink() as nl:
            _link(nl, req.ifname)
            check_routes(routes, lambda table: rtroute.list_routes_ecmp(
                nl, table=rtroute.RT_TABLE_MAIN if table is None else table))

    def delete(self, req: skel.Request) -> None:
        routes = config.load_for_delete(req.config)
        try:
            prev = req.prev_result
        except CNIError:
            prev = None       # DEL does not fail on what only ADD needs
        routes = config.plan(routes, prev, req.ifname, strict=False)
        if not routes or not req.netns:
            return
        try:
            with netns.entered(req.netns), netlink.RtNetlink() as nl:
                link = rtlink.get_link(nl, req.ifname)
                if link is None:
                    return
                for r in routes:
                    try:
                        _delete(nl, r, link.index)
                    except netlink.NetlinkError as exc:
                        if exc.errno not in (ESRCH, ENOENT):
                            raise CNIError(INTERNAL, f"extra-routes: failed to delete "
                                           f"route {r.dst}", exc.strerror) from None
        except netns.GONE:
            return


def main() -> None:
    skel.main(ExtraRoutes())
