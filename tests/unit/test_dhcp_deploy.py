"""deploy/dhcp: the systemd units and the DaemonSet that run the dhcp daemon."""

import configparser
import os
import shutil
import subprocess

import pytest

from pytest_netns import missing_prerequisite

from pycni.ipam.dhcp.config import DEFAULT_SOCKET_PATH
from pycni.ipam.dhcp.daemon import parse_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy", "dhcp")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(DEPLOY, name))
    return parser


def test_socket_unit_is_root_only_at_the_default_path():
    sock = unit("cni-dhcp.socket")["Socket"]
    assert sock["ListenStream"] == DEFAULT_SOCKET_PATH
    assert sock["SocketMode"] == "0600" and sock["DirectoryMode"] == "0700"
    assert sock["SocketUser"] == "root"


def test_service_runs_the_daemon_with_valid_flags():
    argv = unit("cni-dhcp.service")["Service"]["ExecStart"].split()
    assert argv[:2] == ["/opt/cni/bin/dhcp", "daemon"]
    assert parse_flags(argv[2:])["statedir"] == "/var/lib/cni/dhcp"


def test_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        missing_prerequisite("systemd-analyze not installed")
    for name in ("cni-dhcp.socket", "cni-dhcp.service"):
        shutil.copy(os.path.join(DEPLOY, name), tmp_path / name)
    proc = subprocess.run([analyze, "verify", str(tmp_path / "cni-dhcp.socket"),
                           str(tmp_path / "cni-dhcp.service")], capture_output=True, text=True)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "/opt/cni/bin/dhcp" not in line]   # not installed here
    assert not problems, problems


@pytest.fixture(scope="module")
def daemonset():
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(DEPLOY, "dhcp-daemonset.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    assert [d["kind"] for d in docs] == ["DaemonSet"]
    return docs[0]


def test_daemonset_is_valid_for_kubernetes(daemonset):
    try:
        import kubernetes_validate.utils as kv
    except ImportError:
        missing_prerequisite("kubernetes-validate is not installed (scripts/install-deps.sh)")
    for version in ("1.28.0", "1.33.0", kv.latest_version()):
        kv.validate(daemonset, version, strict=True)


def test_daemonset_runs_the_daemon_against_the_hosts_paths(daemonset):
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    (ctr,) = spec["containers"]
    assert ctr["command"] == ["/opt/pycni/cni-bin/dhcp"] and ctr["args"][0] == "daemon"
    flags = parse_flags(ctr["args"][1:])
    prefix = flags["hostprefix"]
    mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    host_of = {path: volumes[m["name"]] for path, m in mounts.items()}
    assert host_of[prefix] == "/" and mounts[prefix]["readOnly"] is True
    assert mounts[prefix]["mountPropagation"] == "HostToContainer"
    # the socket the node's plugin dials, and the state, are the host's, writable
    sock_dir = os.path.dirname(prefix + (flags["socketpath"] or DEFAULT_SOCKET_PATH))
    assert host_of[sock_dir] == "/run/cni" and not mounts[sock_dir].get("readOnly")
    assert host_of[flags["statedir"]] == "/var/lib/cni/dhcp"
    assert not mounts[flags["statedir"]].get("readOnly")
