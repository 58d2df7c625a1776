"""cnitool command line: argument rules, flags, help, runtime conf from
the environment."""

import pytest

from pycni.cnitool import main
from pycni.cnitool.main import Invocation, UsageError, build_runtime_conf, parse_argv


def test_add_needs_netns():
    assert parse_argv(["add", "net", "/run/netns/x"]) == \
        Invocation(command="add", net_name="net", netns="/run/netns/x")
    with pytest.raises(UsageError, match=r"requires at least 2 arg\(s\), only received 1"):
        parse_argv(["add", "net"])
    with pytest.raises(UsageError, match="only received 1"):
        parse_argv(["check", "net"])


@pytest.mark.parametrize("command", ["del", "gc", "status"])
def test_netns_optional(command):
    assert parse_argv([command, "net"]).netns == ""
    with pytest.raises(UsageError, match=r"requires at least 1 arg\(s\), only received 0"):
        parse_argv([command])


@pytest.mark.parametrize("argv", [
    ["-i", "net1", "add", "net", "/n"], ["add", "--ifname", "net1", "net", "/n"],
    ["add", "net", "/n", "--ifname=net1"], ["add", "-inet1", "net", "/n"],
    ["add", "-i=net1", "net", "/n"]])
def test_ifname_flag_anywhere(argv):
    inv = parse_argv(argv)
    assert (inv.command, inv.net_name, inv.netns, inv.ifname) == ("add", "net", "/n", "net1")


def test_help_and_unknown():
    assert parse_argv([]).command is None
    assert parse_argv(["--help"]).command is None
    assert parse_argv(["add", "--help"]).help
    assert parse_argv(["help", "del"]) == Invocation(command="del", help=True)
    with pytest.raises(UsageError, match='unknown command "frob" for "cnitool"'):
        parse_argv(["frob", "x", "y"])
    with pytest.raises(UsageError, match="unknown flag: --bogus"):
        parse_argv(["add", "--bogus", "x", "y"])
    with pytest.raises(UsageError, match="flag needs an argument"):
        parse_argv(["add", "x", "y", "-i"])


def test_root_help_lists_commands():
    text = main.root_help()
    for command in ("add", "check", "del", "gc", "status", "help"):
        assert f"\n  {command} " in text
    assert "-i, --ifname string" in text


def test_runtime_conf_from_env():
    inv = Invocation(command="add", net_name="net", netns="/tmp/ns-fake")
    rt = build_runtime_conf(inv, {"CNI_ARGS": "A=b", "CAP_ARGS": '{"mac":"aa"}'})
    assert (rt.container_id, rt.netns, rt.ifname, rt.args, rt.capability_args) == \
        ("cnitool-5accf66fa4f7cbabc439", "/tmp/ns-fake", "eth0", [("A", "b")], {"mac": "aa"})


def test_runtime_conf_ifname_precedence_and_container_id_override():
    inv = Invocation(command="add", net_name="net", netns="/n", ifname="flag0")
    assert build_runtime_conf(inv, {"CNI_IFNAME": "env0"}).ifname == "flag0"
    inv.ifname = ""
    assert build_runtime_conf(inv, {"CNI_IFNAME": "env0"}).ifname == "env0"
    assert build_runtime_conf(inv, {"CNI_IFNAME": ""}).ifname == "eth0"
    assert build_runtime_conf(inv, {"CNI_CONTAINERID": "mine"}).container_id == "mine"


def test_runtime_conf_without_netns():
    rt = build_runtime_conf(Invocation(command="del", net_name="net"), {})
    assert (rt.container_id, rt.netns) == ("", "")


def test_main_errors_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NETCONFPATH", str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main.main(["add", "net", "/run/netns/x"])
    assert info.value.code == 1
    assert capsys.readouterr().err == f"no net configurations found in {tmp_path}\n"
    with pytest.raises(SystemExit) as info:
        main.main(["add"])
    assert info.value.code == 1
    assert capsys.readouterr().err.startswith("Error: requires at least 2 arg(s)")


def test_main_bad_cni_args(tmp_path, monkeypatch, capsys):
    (tmp_path / "10.conflist").write_text(
        '{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"loopback"}]}')
    monkeypatch.setenv("NETCONFPATH", str(tmp_path))
    monkeypatch.setenv("CNI_ARGS", "novalue")
    with pytest.raises(SystemExit) as info:
        main.main(["add", "net", "/run/netns/x"])
    assert info.value.code == 1
    assert capsys.readouterr().err == 'invalid CNI_ARGS pair "novalue"\n'


def test_main_del_needs_a_container(tmp_path, monkeypatch, capsys):
    (tmp_path / "10.conflist").write_text(
        '{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"loopback"}]}')
    monkeypatch.setenv("NETCONFPATH", str(tmp_path))
    monkeypatch.delenv("CNI_CONTAINERID", raising=False)
    with pytest.raises(SystemExit):
        main.main(["del", "net"])
    assert "CNI_CONTAINERID is required" in capsys.readouterr().err
