"""One version, in one place (issue #15): pycni.__version__, read by
pyproject.toml, printed by `pycni --version`, `cnitool --version` and a
plugin run without CNI_COMMAND; the licence and the changelog carry it."""

import io
import os
import re
import subprocess
import sys
import tomllib

import pytest

import pycni
from pycni import cli, skel
from pycni.cnitool import main as cnitool_main
from pycni.launcher import launcher_text
from pycni.registry import PLUGINS, SUPPORTED_VERSIONS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION = pycni.__version__
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))


def test_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)


def test_pyproject_reads_the_version_from_the_package():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pycni.__version__"}
    assert project["tool"]["setuptools"]["package-dir"]["pycni"] == "lib"
    with open(os.path.join(REPO, "lib", "__init__.py")) as f:
        assert re.findall(r'^__version__ = "([^"]+)"$', f.read(), re.M) == [VERSION]


def test_licence_is_apache_2_in_the_file_and_the_metadata():
    with open(os.path.join(REPO, "LICENSE")) as f:
        text = f.read()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    assert "License :: OSI Approved :: Apache Software License" in project["classifiers"]
    assert project["urls"] and all(u.startswith("https://") for u in project["urls"].values())


def test_changelog_has_an_entry_for_this_version():
    with open(os.path.join(REPO, "CHANGELOG.md")) as f:
        text = f.read()
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - \d{{4}}-\d\d-\d\d$", text, re.M)
    assert "keepachangelog.com" in text


def test_pycni_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"pycni v{VERSION}\n"


@pytest.mark.parametrize("argv", [["--version"], ["add", "--version"], ["-i", "x", "--version"]])
def test_cnitool_version(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cnitool_main.main(argv)
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"cnitool pycni v{VERSION}\n"


def test_cnitool_version_after_double_dash_is_an_argument(capsys):
    """After `--` it is a network name, as any other word would be."""
    with pytest.raises(SystemExit) as exit_:
        cnitool_main.main(["--", "--version"])
    assert exit_.value.code == 1
    assert "version" not in capsys.readouterr().out


def test_console_scripts_print_the_version():
    bindir = os.path.dirname(sys.executable)
    for tool, expected in (("pycni", f"pycni v{VERSION}\n"),
                           ("cnitool", f"cnitool pycni v{VERSION}\n")):
        path = os.path.join(bindir, tool)
        if not os.path.exists(path):
            pytest.skip(f"{tool} console script not installed beside {sys.executable}")
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        assert (proc.returncode, proc.stdout) == (0, expected), proc.stderr


class NamedPlugin(skel.Plugin):
    name = "host-device"
    about = "CNI host-device plugin (pycni)"     # a plugin's own text is not used
    supported_versions = ("0.3.1", "1.0.0")


def test_about_text_names_the_plugin_and_pycnis_version(capsys):
    code = skel.run(NamedPlugin(), {}, io.BytesIO(), io.StringIO())
    assert code == 0
    assert capsys.readouterr().err == (f"CNI host-device plugin pycni v{VERSION}\n"
                                       "CNI protocol versions supported: 0.3.1, 1.0.0\n")


def _launch(name, env, tmp_path):
    """Run plugin `name` through its launcher text (as installed)."""
    script = tmp_path / name
    script.write_text(launcher_text(name, str(tmp_path)))
    script.chmod(0o755)
    return subprocess.run([sys.executable, "-I", "-S", "-B", str(script)], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_plugin_prints_its_about_text_like_the_reference(name, tmp_path):
    """The reference: "CNI bridge plugin v1.9.1" and its versions on stderr,
    nothing on stdout, exit 0."""
    if os.path.basename(os.path.dirname(os.path.abspath(pycni.__file__))) != "pycni":
        pytest.skip("needs a regular install of the package")
    proc = _launch(name, {}, tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr == (f"CNI {name} plugin pycni v{VERSION}\n"
                           "CNI protocol versions supported: "
                           f"{', '.join(SUPPORTED_VERSIONS[name])}\n")


def test_version_answer_is_unchanged(tmp_path):
    """VERSION answers the CNI versions only, as the reference does."""
    from pycni.version import answer
    proc = _launch("bridge", {"CNI_COMMAND": "VERSION"}, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == answer(SUPPORTED_VERSIONS["bridge"])
    assert "pycni" not in proc.stdout + proc.stderr


def test_launcher_marker_line_names_the_version():
    second = launcher_text("ptp", "/opt/cni/bin").splitlines()[1]
    assert second == (f"# pycni v{VERSION} ptp plugin, written by `pycni install`; "
                      "reinstall after upgrading.")
    assert cli.looks_ours("ptp", launcher_text("ptp", "/opt/cni/bin").encode())


def test_reading_the_version_loads_nothing():
    code = (f"import sys; sys.path.append({PACKAGE_PARENT!r}); before = set(sys.modules); "
            "import pycni; print(pycni.__version__); "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, check=True)
    version, loaded = proc.stdout.split("\n")[:2]
    assert version == VERSION and loaded == "pycni"
