"""libcni's result cache, byte-compatible with the Go runtime's.

``<cacheDir>/results/<network>-<containerID>-<ifname>`` (directory 0700,
file 0600) holds::

    {"kind":"cniCacheV1","containerId":..,"config":<base64 of the list bytes>,
     "ifName":..,"networkName":..,"netns":..,"cniArgs":[[k,v]..],
     "capabilityArgs":{..},"result":{..}}

(``netns``, ``cniArgs``, ``capabilityArgs`` and ``result`` are left out when
empty). A legacy file holds only the result. Encoding and decoding are
pure; the file functions at the end are the thin I/O layer.
"""

import base64
import json
import os
from dataclasses import dataclass, field

from pycni import version as spec_versions
from pycni import files
from pycni.errors import CNIError
from pycni.result import parse_result

from .conf import go_escape
from .request import RuntimeConf

KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni"
MAX_CACHE_FILE = 16 << 20


class CacheError(Exception):
    pass


@dataclass
class Attachment:
    """One cached attachment (libcni's NetworkAttachment)."""
    container_id: str
    network: str
    ifname: str
    config: bytes = b""
    netns: str = ""
    cni_args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict | None = None


def cache_path(cache_dir: str, net_name: str, rt: RuntimeConf) -> str:
    if not net_name or not rt.container_id or not rt.ifname:
        raise CacheError(
            f'cache file path requires network name ("{net_name}"), container ID '
            f'("{rt.container_id}"), and interface name ("{rt.ifname}")')
    return os.path.join(cache_dir, "results", f"{net_name}-{rt.container_id}-{rt.ifname}")


def _file_name(cache_dir: str, net_name: str, rt: RuntimeConf) -> str:
    name = os.path.basename(cache_path(cache_dir, net_name, rt))
    if "/" in f"{net_name}{rt.container_id}{rt.ifname}" or name.startswith("."):
        raise CacheError(f'invalid cache file name "{net_name}-{rt.container_id}-{rt.ifname}"')
    return name


def _compact(obj) -> str:
    return go_escape(json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False))


def encode(rt: RuntimeConf, net_name: str, config: bytes, result: dict | None) -> bytes:
    """The cache file for a successful ADD (fields in libcni's order)."""
    parts = [
        f'"kind":{_compact(KIND)}',
        f'"containerId":{_compact(rt.container_id)}',
        f'"config":{_compact(base64.b64encode(config).decode())}',
        f'"ifName":{_compact(rt.ifname)}',
        f'"networkName":{_compact(net_name)}',
    ]
    if rt.netns:
        parts.append(f'"netns":{_compact(rt.netns)}')
    if rt.args:
        parts.append(f'"cniArgs":{_compact([list(p) for p in rt.args])}')
    if rt.capability_args:
        parts.append(f'"capabilityArgs":{_compact(rt.capability_args)}')
    if result:
        parts.append(f'"result":{_compact(result)}')
    return ("{" + ",".join(parts) + "}").encode()


def decode_attachment(data: bytes) -> Attachment | None:
    """A cniCacheV1 file as an Attachment; None for anything else."""
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(info, dict) or info.get("kind") != KIND:
        return None
    try:
        config = base64.b64decode(info.get("config") or "", validate=True)
        args = [(str(k), str(v)) for k, v in info.get("cniArgs") or []]
    except (ValueError, TypeError):
        return None
    caps = info.get("capabilityArgs")
    return Attachment(container_id=str(info.get("containerId") or ""),
                      network=str(info.get("networkName") or ""),
                      ifname=str(info.get("ifName") or ""),
                      config=config, netns=str(info.get("netns") or ""),
                      cni_args=args, capability_args=caps if isinstance(caps, dict) else None)


def _convert(raw, cni_version: str) -> dict:
    if not isinstance(raw, dict):
        raise CacheError("cached result is not a JSON object")
    result_version = raw.get("cniVersion")
    if result_version not in spec_versions.ALL:
        raise CacheError(f'unsupported CNI result version "{result_version or ""}"')
    if cni_version not in spec_versions.ALL:
        raise CacheError(f'failed to convert cached result to config version "{cni_version}"')
    try:
        return parse_result(raw, result_version).to_dict(cni_version)
    except CNIError as exc:
        raise CacheError(f'failed to convert cached result to config version '
                         f'"{cni_version}": {exc}') from None


def cached_result(data: bytes, cni_version: str) -> dict:
    """The ADD result stored in a cache file, converted to `cni_version`.

    Falls back to the legacy format (the whole file is the result) when the
    file is not a cniCacheV1 object, as libcni does. Raises CacheError when
    no usable result can be read.
    """
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        info = None
    if isinstance(info, dict) and info.get("kind") == KIND:
        return _convert(info.get("result"), cni_version)
    try:
        legacy = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheError(f"failed to parse cached result: {exc}") from None
    return _convert(legacy, cni_version)


# --- file layer ---------------------------------------------------------------

def _results_dir(cache_dir: str, create: bool) -> int | None:
    """fd of `<cacheDir>/results`: the cache dir is trusted as a path (created
    0700 when missing, as libcni's MkdirAll); `results` below it is created
    0700 whatever the umask and refused when it is a symlink or not ours."""
    base = files.open_tree(cache_dir, 0o700) if create else files.open_dir(cache_dir)
    if base is None:
        return None
    try:
        return files.open_subdir(base, "results", 0o700, create)
    finally:
        os.close(base)


def write(cache_dir: str, net_name: str, rt: RuntimeConf, config: bytes,
          result: dict | None) -> None:
    """Replace the cache file (0600), never writing through a planted link."""
    name = _file_name(cache_dir, net_name, rt)
    data = encode(rt, net_name, config, result)
    fd = _results_dir(cache_dir, create=True)
    assert fd is not None       # create=True: made or raises
    try:
        files.write_atomic_at(fd, name, data, 0o600)
    finally:
        os.close(fd)


def _read_in(fd: int, name: str) -> bytes | None:
    try:
        return files.read_at(fd, name, MAX_CACHE_FILE)
    except OSError:
        return None


def read(cache_dir: str, net_name: str, rt: RuntimeConf) -> bytes | None:
    """The cache file's bytes; None when there is none (read errors, a
    symlink or anything but a regular file included)."""
    try:
        name = _file_name(cache_dir, net_name, rt)
    except CacheError:
        return None
    try:
        fd = _results_dir(cache_dir, create=False)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        return _read_in(fd, name)
    finally:
        os.close(fd)


def delete(cache_dir: str, net_name: str, rt: RuntimeConf) -> None:
    try:
        name = _file_name(cache_dir, net_name, rt)
        fd = _results_dir(cache_dir, create=False)
    except (CacheError, OSError):
        return
    if fd is None:
        return
    try:
        files.unlink_at(fd, name)
    except OSError:
        pass
    finally:
        os.close(fd)


def attachments(cache_dir: str) -> list[Attachment]:
    """Every valid cached attachment, in file-name order."""
    try:
        fd = _results_dir(cache_dir, create=False)
    except OSError:
        return []
    if fd is None:
        return []
    out = []
    try:
        for name in sorted(os.listdir(fd)):
            data = _read_in(fd, name)
            attachment = None if data is None else decode_attachment(data)
            if attachment is None or not attachment.ifname or not attachment.network:
                continue
            out.append(attachment)
    finally:
        os.close(fd)
    return out
