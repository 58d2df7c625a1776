"""`pycni install`: what a launcher trusts, and the ownership rule install
enforces before writing anything (issue #11, finding 7).

The ownership tests need root (chown to nobody); they skip otherwise.
"""

import os
import pwd
import stat
import subprocess
import sys

import pytest

import pycni
from pycni import cli, launcher

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root to chown files to nobody")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))


def nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def problems_of(path, allow_missing=False, owners=None):
    problems = []
    cli.check_path(str(path), owners or cli.trusted_owners(), problems, allow_missing)
    return problems


# ------------------------------------------------------------ the launcher

def test_launcher_path_is_only_the_directory_holding_pycni(monkeypatch, tmp_path):
    planted = [str(tmp_path / "pythonpath" / "site-packages"),
               str(tmp_path / ".local/lib/python3/site-packages"),
               str(tmp_path / "dist-packages"), "", "."]
    monkeypatch.setattr(sys, "path", planted + sys.path)
    assert launcher.import_paths() == [PACKAGE_PARENT]
    text = launcher.launcher_text("loopback", "/opt/cni/bin")
    for entry in planted:
        if entry not in ("", "."):
            assert entry not in text
    assert f"sys.path += {[PACKAGE_PARENT]!r}\n" in text


def test_launcher_appends_after_stdlib_and_keeps_isolation():
    first, *body = launcher.launcher_text("bridge", "/opt/cni/bin", python="/usr/bin/python3").splitlines()
    assert first == "#!/usr/bin/python3 -ISB"
    assert "sys.path[:0]" not in "\n".join(body)
    assert body[-2:] == ["from pycni.entry import serve",
                         "serve('bridge', '/opt/cni/bin/.pycni-bundle')"]


def test_launcher_module_stays_cheap_to_import():
    """invoke.py imports it on the delegation hot path: it adds nothing but
    itself and the registry to what `import pycni.posixos` loads (the install
    checks' argparse, subprocess, ast stay in cli.py)."""
    def loaded(module):
        code = (f"import sys; sys.path.append({PACKAGE_PARENT!r}); import {module}; "
                "print(' '.join(sorted(sys.modules)))")
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code],
                              capture_output=True, text=True, check=True)
        return set(proc.stdout.split())

    assert loaded("pycni.launcher") - loaded("pycni.posixos") == {"pycni.launcher", "pycni.registry"}


# ------------------------------------------------------------ the rule

def test_root_owned_tree_is_trusted(tmp_path):
    (tmp_path / "a").mkdir(mode=0o755)
    assert problems_of(tmp_path / "a") == []
    assert problems_of(sys.executable) == []


def test_missing_path_is_fine_under_a_trusted_ancestor_only(tmp_path):
    assert problems_of(tmp_path / "new" / "bin", allow_missing=True) == []
    assert problems_of(tmp_path / "new", allow_missing=False) != []
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    assert "writable by group or others" in problems_of(open_dir / "bin", True)[0]


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o666, 0o664], ids=oct)
def test_group_or_other_writable_is_refused(tmp_path, mode):
    entry = tmp_path / "entry"
    entry.mkdir() if mode & 0o100 else entry.write_text("")
    entry.chmod(mode)
    problems = problems_of(entry)
    assert len(problems) == 1 and "writable by group or others" in problems[0]


def test_ancestor_writable_by_others_is_refused(tmp_path):
    (tmp_path / "a/b/c").mkdir(parents=True)
    (tmp_path / "a").chmod(0o777)
    problems = problems_of(tmp_path / "a/b/c")
    assert problems == [f"{tmp_path / 'a'} is writable by group or others (mode 0777)"]


@needs_root
def test_entry_owned_by_another_user_is_refused(tmp_path):
    entry = tmp_path / "pkg"
    entry.mkdir(mode=0o755)
    os.chown(entry, nobody(), -1)
    assert "owned by uid" in problems_of(entry / "x.py", allow_missing=True)[0]


@needs_root
def test_sticky_world_writable_ancestor_needs_trusted_children(tmp_path):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "mine").mkdir(mode=0o755)
    assert problems_of(sticky / "mine") == []
    (sticky / "theirs").mkdir(mode=0o755)
    os.chown(sticky / "theirs", nobody(), -1)
    assert "owned by uid" in problems_of(sticky / "theirs")[0]
    # sticky but owned by someone else: that owner may rename anything in it
    os.chown(sticky, nobody(), -1)
    assert "owned by uid" in problems_of(sticky / "mine")[0]


def test_sticky_world_writable_dir_itself_is_refused(tmp_path):
    """Fine to walk through (/tmp), not to use: others could add a plugin
    beside ours, or a module to the import path."""
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert "writable by group or others (mode 1777)" in problems_of(sticky)[0]
    with pytest.raises(cli.InstallRefused):
        cli.install(str(sticky))
    assert os.listdir(sticky) == []
    assert problems_of(sticky / "new", allow_missing=True) == []


def test_sticky_dir_inside_the_package_is_refused(tmp_path, monkeypatch):
    site = fake_installation(tmp_path, monkeypatch)
    (site / "pycni" / "plugins").mkdir()
    (site / "pycni" / "plugins").chmod(0o1777)
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(tmp_path / "bin"))
    assert err.value.problems == [f"{site}/pycni/plugins is writable by group or others "
                                  "(mode 1777)"]


@needs_root
def test_symlinks_are_followed_and_checked(tmp_path):
    good = tmp_path / "good"
    good.mkdir(mode=0o755)
    bad = tmp_path / "bad"
    bad.mkdir()
    bad.chmod(0o777)
    (bad / "inner").mkdir(mode=0o755)
    os.symlink("good", tmp_path / "to-good")
    os.symlink(str(bad / "inner"), tmp_path / "to-bad")
    os.symlink("good", tmp_path / "theirs")
    os.lchown(tmp_path / "theirs", nobody(), -1)
    problems = []
    assert cli.check_path(str(tmp_path / "to-good"), {0}, problems) == str(good)
    assert problems == []
    assert "writable by group or others" in problems_of(tmp_path / "to-bad")[0]
    assert "owned by uid" in problems_of(tmp_path / "theirs")[0]
    os.symlink("loop", tmp_path / "loop")
    assert "too many levels" in problems_of(tmp_path / "loop")[-1]


def test_trusted_owners_are_root_and_the_installing_user():
    assert cli.trusted_owners() == {0, os.geteuid()}


# ------------------------------------------------------------ install

def fake_installation(tmp_path, monkeypatch, stdlib=None):
    """A pycni package tree of our own that the launchers would import."""
    site = tmp_path / "site"
    (site / "pycni").mkdir(parents=True, mode=0o755)
    (site / "pycni" / "__init__.py").write_text("")
    (site / "pycni" / "skel.py").write_text("")
    monkeypatch.setattr(cli, "import_paths", lambda: [str(site)])
    if stdlib is not None:
        monkeypatch.setattr(cli, "interpreter_facts", lambda python: ([str(stdlib)], "tag", ""))
    return site


def test_install_writes_only_after_every_check(tmp_path, monkeypatch):
    site = fake_installation(tmp_path, monkeypatch)
    (site / "pycni" / "skel.py").chmod(0o646)
    target = tmp_path / "new" / "bin"
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(target))
    assert err.value.problems == [f"{site}/pycni/skel.py is writable by group or others "
                                  "(mode 0646)"]
    assert not (tmp_path / "new").exists()


def test_install_refuses_a_package_dir_others_can_write(tmp_path, monkeypatch):
    site = fake_installation(tmp_path, monkeypatch)
    site.chmod(0o777)
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(tmp_path / "bin"))
    assert f"{site} is writable by group or others (mode 0777)" in err.value.problems
    assert not (tmp_path / "bin").exists()


def test_install_refuses_a_writable_stdlib_file(tmp_path, monkeypatch):
    stdlib = tmp_path / "stdlib"
    (stdlib / "json").mkdir(parents=True)
    (stdlib / "json" / "__init__.py").write_text("")
    (stdlib / "json" / "__init__.py").chmod(0o666)
    (stdlib / "site-packages").mkdir()
    (stdlib / "site-packages").chmod(0o777)    # not a module name: not walked
    fake_installation(tmp_path, monkeypatch, stdlib=stdlib)
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(tmp_path / "bin"))
    assert err.value.problems == [f"{stdlib}/json/__init__.py is writable by group "
                                  "or others (mode 0666)"]


def test_install_refuses_a_writable_shared_libpython(tmp_path, monkeypatch):
    fake_installation(tmp_path, monkeypatch)
    lib = tmp_path / "libpython3.so.1.0"
    lib.write_text("")
    lib.chmod(0o666)
    facts = cli.interpreter_facts(sys.executable)
    monkeypatch.setattr(cli, "interpreter_facts", lambda python: (facts[0], facts[1], str(lib)))
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(tmp_path / "bin"))
    assert err.value.problems == [f"{lib} is writable by group or others (mode 0666)"]


def test_interpreter_facts_are_what_the_launcher_runs_with():
    path, tag, libpython = cli.interpreter_facts(sys.executable)
    assert path and all(p.startswith("/") for p in path)
    assert PACKAGE_PARENT not in path       # -S: no site-packages
    assert tag == sys.implementation.cache_tag
    assert libpython == "" or os.path.exists(libpython)


def test_install_refuses_an_editable_install(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "import_paths", lambda: [str(tmp_path)])
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(tmp_path / "bin"))
    assert "holds no pycni package" in err.value.problems[0]


@pytest.mark.parametrize("python", ["relative/python", "/usr/bin/py thon",
                                    "/usr/bin/python\nimport os", "/" + "p" * 300],
                         ids=["relative", "blank", "newline", "too-long"])
def test_install_refuses_an_interpreter_path_that_is_no_shebang(tmp_path, python):
    problems = cli.installation_problems(python, str(tmp_path / "bin"), {0})
    assert "cannot be a #! line" in problems[0]


@needs_root
def test_install_refuses_an_interpreter_others_control(tmp_path):
    link = tmp_path / "python"
    os.symlink(sys.executable, link)
    os.lchown(link, nobody(), -1)
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(tmp_path / "bin"), python=str(link))
    assert f"{link} is owned by uid {nobody()}" in err.value.problems[0]
    assert not (tmp_path / "bin").exists()


def test_install_refuses_a_writable_pyvenv_cfg(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    (venv / "pyvenv.cfg").write_text("home = /nonexistent\n")
    (venv / "pyvenv.cfg").chmod(0o666)
    problems = cli.installation_problems(str(venv / "bin" / "python"),
                                         str(tmp_path / "bin"), {0, os.geteuid()})
    assert problems == [f"{venv}/pyvenv.cfg is writable by group or others (mode 0666)"]


def test_install_under_umask_000_makes_0755(tmp_path):
    old = os.umask(0)
    try:
        written = cli.install(str(tmp_path / "opt" / "cni" / "bin"), ["loopback"])
    finally:
        os.umask(old)
    for d in ("opt", "opt/cni", "opt/cni/bin"):
        assert stat.S_IMODE(os.stat(tmp_path / d).st_mode) == 0o755, d
    assert written == [str(tmp_path / "opt/cni/bin/loopback")]
    assert stat.S_IMODE(os.stat(written[0]).st_mode) == 0o755
    # no temp files; the bundle of compiled modules beside the launchers
    # (pycni.bundle) and the manifest of what install wrote
    assert sorted(os.listdir(tmp_path / "opt/cni/bin")) == [".pycni-bundle", ".pycni-manifest",
                                                            "loopback"]
    assert stat.S_IMODE(os.stat(tmp_path / "opt/cni/bin/.pycni-bundle").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "opt/cni/bin/.pycni-manifest").st_mode) == 0o644


def test_install_under_restrictive_umask_still_makes_0755(tmp_path):
    old = os.umask(0o077)
    try:
        cli.install(str(tmp_path / "bin"), ["loopback"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "bin").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "bin" / "loopback").st_mode) == 0o755


def test_install_refuses_an_existing_dir_others_can_write(tmp_path):
    target = tmp_path / "bin"
    target.mkdir()
    target.chmod(0o777)
    with pytest.raises(cli.InstallRefused) as err:
        cli.install(str(target))
    assert err.value.problems == [f"{target} is writable by group or others (mode 0777)"]
    assert os.listdir(target) == []


@needs_root
def test_install_refuses_a_dir_symlink_to_where_others_write(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, nobody(), -1)
    os.symlink(theirs, tmp_path / "bin")
    with pytest.raises(cli.InstallRefused):
        cli.install(str(tmp_path / "bin"))
    assert os.listdir(theirs) == []


def test_install_through_a_trusted_dir_symlink(tmp_path):
    (tmp_path / "real").mkdir(mode=0o755)
    os.symlink("real", tmp_path / "bin")
    cli.install(str(tmp_path / "bin"), ["loopback"])
    assert sorted(os.listdir(tmp_path / "real")) == [".pycni-bundle", ".pycni-manifest",
                                                     "loopback"]


def test_install_replaces_a_symlinked_launcher_instead_of_following_it(tmp_path):
    """A symlink at a launcher's name is not pycni's: refused, and with
    --force replaced (the link itself), never followed."""
    (tmp_path / "bin").mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.symlink(victim, tmp_path / "bin" / "loopback")
    with pytest.raises(cli.NotOurs) as err:
        cli.install(str(tmp_path / "bin"), ["loopback"])
    assert err.value.problems == [f"{tmp_path}/bin/loopback is a symbolic link "
                                  "(install never follows one)"]
    assert os.path.islink(tmp_path / "bin" / "loopback")
    assert sorted(os.listdir(tmp_path / "bin")) == ["loopback"]
    cli.install(str(tmp_path / "bin"), ["loopback"], force=True)
    assert victim.read_text() == "keep me\n"
    assert not os.path.islink(tmp_path / "bin" / "loopback")
    assert "written by `pycni install`" in (tmp_path / "bin" / "loopback").read_text()


def test_main_reports_a_refusal_with_exit_1(tmp_path, capsys):
    target = tmp_path / "bin"
    target.mkdir()
    target.chmod(0o757)
    assert cli.main(["install", "--dir", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "refusing to install" in err and f"{target} is writable" in err
