"""The pycni.plugins entry-point group (extplugins.py): which entry points
count, where their code is, the launcher install writes for them, and the
trust check of their files (issue #16)."""

import importlib.metadata
import os
import sys

import pytest

from pycni import cli, extplugins


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A third-party plugin package `sdkfakeplug` on sys.path."""
    root = tmp_path / "site"
    pkg = root / "sdkfakeplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text("def main():\n    pass\n")
    os.chmod(tmp_path, 0o755)
    for d in (root, pkg):
        os.chmod(d, 0o755)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


def entry_points(monkeypatch, *pairs):
    eps = [importlib.metadata.EntryPoint(name, value, extplugins.GROUP) for name, value in pairs]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [e for e in eps if e.group == group])


def test_discover_keeps_usable_entry_points(fake_package, monkeypatch):
    entry_points(monkeypatch, ("fake-one", "sdkfakeplug.plugin"),
                 ("fake-two", "sdkfakeplug.plugin:main"),
                 ("bridge", "sdkfakeplug.plugin"),          # pycni's own name
                 ("../evil", "sdkfakeplug.plugin"),          # no file name
                 ("fake-bad", "sdkfakeplug plugin"),         # no module
                 ("fake-attr", "sdkfakeplug.plugin:run"),    # not main()
                 ("fake-one", "sdkfakeplug.other"))          # taken
    warnings = []
    found = extplugins.discover(warnings.append)
    assert list(found) == ["fake-one", "fake-two"]
    assert found["fake-one"].module == "sdkfakeplug.plugin"
    assert found["fake-one"].root == str(fake_package)
    assert found["fake-one"].files == [str(fake_package / "sdkfakeplug")]
    assert len(warnings) == 5
    assert "one of pycni's own plugins" in warnings[0]


def test_module_that_is_not_installed(monkeypatch):
    entry_points(monkeypatch, ("fake-missing", "sdk_no_such_module.plugin"))
    plugin = extplugins.discover()["fake-missing"]
    assert plugin.root is None and "not installed" in plugin.problem
    with pytest.raises(ValueError):
        extplugins.launcher_text(plugin, "/opt/cni/bin", sys.executable)


def test_namespace_package_is_refused(tmp_path, monkeypatch):
    (tmp_path / "sdknsplug").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugin = extplugins.ExtPlugin("fake-ns", "sdknsplug.plugin")
    assert plugin.root is None and "namespace package" in plugin.problem


def test_launcher_text(fake_package):
    plugin = extplugins.ExtPlugin("fake-one", "sdkfakeplug.plugin", "fake 1.0")
    text = extplugins.launcher_text(plugin, "/opt/cni/bin", "/usr/bin/python3")
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/python3 -ISB"
    assert cli.looks_ours("fake-one", text.encode())      # install may replace it later
    assert lines[-1] == "serve_module('sdkfakeplug.plugin', '/opt/cni/bin/.pycni-bundle')"
    namespace = {}
    exec(lines[3].replace("sys.path +=", "paths ="), namespace)
    assert namespace["paths"][-1] == str(fake_package)   # after pycni's own directory


def test_files_others_can_write_are_refused(fake_package):
    plugin = extplugins.ExtPlugin("fake-one", "sdkfakeplug.plugin")
    owners = cli.trusted_owners()
    assert extplugins.installation_problems([plugin], owners) == []
    os.chmod(fake_package / "sdkfakeplug" / "plugin.py", 0o666)
    problems = extplugins.installation_problems([plugin], owners)
    assert any("plugin.py is writable by group or others" in p for p in problems)


def test_cli_list_and_install(fake_package, monkeypatch, tmp_path, capsys):
    entry_points(monkeypatch, ("fake-one", "sdkfakeplug.plugin"))
    assert cli.main(["list"]) == 0
    assert "fake-one\tsdkfakeplug.plugin\t\n" in capsys.readouterr().out
    target = tmp_path / "bin"
    written = cli.install(str(target), ["fake-one"])
    assert written == [str(target / "fake-one")]
    assert "serve_module('sdkfakeplug.plugin'" in (target / "fake-one").read_text()
    # refused, with nothing written, when its files are not trustworthy
    os.chmod(fake_package / "sdkfakeplug", 0o777)
    with pytest.raises(cli.InstallRefused):
        cli.install(str(tmp_path / "bin2"), ["fake-one"])
    assert not (tmp_path / "bin2").exists()


def test_cli_install_refuses_an_unknown_name(monkeypatch, capsys):
    entry_points(monkeypatch)
    with pytest.raises(SystemExit):
        cli.main(["install", "--dir", "/nonexistent/sdk", "no-such-plugin"])
    assert "unknown plugin(s): no-such-plugin" in capsys.readouterr().err


def test_installing_everything_skips_a_plugin_that_cannot_be_found(monkeypatch, capsys):
    entry_points(monkeypatch, ("fake-missing", "sdk_no_such_module.plugin"))
    assert cli._third_party(None) == {}
    assert "third-party plugin fake-missing skipped" in capsys.readouterr().err
    # named, it is kept, and install's trust check refuses it
    named = cli._third_party(["fake-missing"])
    problems = extplugins.installation_problems(named.values(), cli.trusted_owners())
    assert problems and "not installed" in problems[0]
