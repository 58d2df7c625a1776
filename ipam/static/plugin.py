"""static: IPAM that hands out exactly the addresses the config names.

ADD   the configured addresses (ipam.addresses, CNI_ARGS IP/GATEWAY,
      args.cni.ips, the `ips` capability), routes and dns as the result
DEL   nothing to release (the reference does not even read the config)
CHECK each configured address that prevResult lists has the configured
      gateway (the reference's check)
GC, STATUS  nothing is allocated, nothing can run out: success
"""

from pycni import skel
from pycni.result import Result

from . import config as cfg


class StaticPlugin(skel.Plugin):
    name = "static"
    about = "CNI static plugin (pycni)"

    def add(self, req: skel.Request) -> Result:
        conf = cfg.load(req.config, req.args_text)
        return Result(cni_version=req.cni_version, ips=cfg.result_ips(conf),
                      routes=list(conf.routes), dns=conf.dns)

    def delete(self, req: skel.Request) -> None:
        return None     # nothing was allocated: DEL always succeeds

    def check(self, req: skel.Request) -> None:
        conf = cfg.load(req.config, req.args_text)
        prev = cfg.prev_result(req.config, req.cni_version)
        if prev is None:
            raise cfg.refusal("Required prevResult missing")
        problem = cfg.check_problem(conf, prev, req.ifname)
        if problem:
            raise cfg.refusal(problem)


def main() -> None:
    skel.main(StaticPlugin())


if __name__ == "__main__":
    main()
