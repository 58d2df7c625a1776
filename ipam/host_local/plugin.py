"""host-local: hand out addresses from ranges, recorded on the node's disk.

ADD  one address per range set (requested ones honoured), IPAM result
DEL  release every address of (containerID, ifname); idempotent
CHECK the container holds its addresses (those of prevResult in our ranges,
     else one per range set)
GC   release allocations of attachments not in cni.dev/valid-attachments
STATUS code 50 when a range set has no free address left (ADD would fail)
"""

from pycni import nodeconf, skel
from pycni.errors import CNIError, INTERNAL, PLUGIN_NOT_AVAILABLE
from pycni.result import Result

from . import config as cfg


def load_config(req: skel.Request) -> cfg.Settings:
    conf = cfg.load(req.config, req.args_text)
    # A config chooses its dataDir, but only below a state directory the
    # node's root allows: no config alone picks where root writes.
    nodeconf.require_state_dir(conf.data_dir, req.env)
    return conf


def open_store(conf: cfg.Settings, create: bool = True):
    from .store import DiskStore
    # the range sets let the store follow the reference's cursors (a DEL
    # whose config does not load has none: it rebuilds after an outside writer)
    store = DiskStore(conf.data_dir, conf.name, range_sets=conf.range_sets or None)
    if create:
        store.create()
    return store


class HostLocalPlugin(skel.Plugin):
    name = "host-local"

    def add(self, req: skel.Request) -> Result:
        from .allocator import allocate
        conf = load_config(req)
        result = Result(cni_version=req.cni_version)
        if conf.resolv_conf:
            from .dns import read_dns
            result.dns = read_dns(conf.resolv_conf)
        store = open_store(conf)
        with store.locked():
            result.ips = allocate(conf, store, req.container_id, req.ifname)
        result.routes = list(conf.routes)
        return result

    def delete(self, req: skel.Request) -> None:
        try:
            conf = load_config(req)
        except CNIError:
            # Releasing needs only the store's location: a config whose
            # ranges no longer validate must not leak its addresses.
            conf = cfg.store_location(req.config)
            if conf is None:
                raise
            if not nodeconf.state_dir_allowed(conf.data_dir, req.env):
                return   # ADD never allocated there: nothing to release
        store = open_store(conf)
        with store.locked():
            store.release(req.container_id, req.ifname)

    def check(self, req: skel.Request) -> None:
        conf = load_config(req)
        store = open_store(conf)
        with store.locked():
            held = store.owned(req.container_id, req.ifname, complete=True)
        from .check import check_problem
        problem = check_problem(conf, held, req.prev_result, req.container_id)
        if problem:
            raise CNIError(INTERNAL, f"host-local: {problem}")

    def gc(self, req: skel.Request) -> None:
        from .gc import stale_allocations
        conf = load_config(req)
        valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
        store = open_store(conf, create=False)
        if not store.exists():
            return
        with store.locked():
            allocs = store.scan()       # GC reads the files themselves, not the index
            store.remove_scanned(allocs, stale_allocations(allocs, valid))

    def status(self, req: skel.Request) -> None:
        from .gc import exhausted_sets
        from .range_set import range_set_text
        conf = load_config(req)
        store = open_store(conf, create=False)
        if not store.exists():
            return
        with store.locked():
            full = exhausted_sets(conf.range_sets, store.taken())
        if full:
            i, rs = full[0]
            raise CNIError(PLUGIN_NOT_AVAILABLE,
                           f"no IP addresses available in range set {i}: "
                           f"{range_set_text(rs)}")


def main() -> None:
    skel.main(HostLocalPlugin())


if __name__ == "__main__":
    main()
