"""resolvConf: the file a config names, read into the result's `dns`
(the reference's dns.go)."""

import errno
from pycni import posixos as os

from pycni.errors import CNIError, IO_FAILURE


def parse_resolv_conf(text: str):
    """nameserver/domain/search/options lines -> pycni.result.DNS."""
    from pycni.result import DNS
    dns = DNS()
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            dns.nameservers.append(fields[1])
        elif fields[0] == "domain":
            dns.domain = fields[1]
        elif fields[0] == "search":
            dns.search += fields[1:]
        elif fields[0] == "options":
            dns.options += fields[1:]
    return dns


def read_dns(path: str):
    """resolvConf is a path the config names, followed as a path (it is
    often a symlink) but read only if it is a regular file: a FIFO there
    must not hang the call."""
    from pycni.files import read_file
    try:
        data = read_file(path, 1 << 20, follow_symlinks=True)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        return parse_resolv_conf(data.decode("utf-8", "replace"))
    except OSError as exc:
        raise CNIError(IO_FAILURE, f"failed to read resolvConf {path}",
                       exc.strerror or str(exc)) from None
