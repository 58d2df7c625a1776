"""Finding a plugin on CNI_PATH (execpath.find_in_path) and running it as
a runtime does (pluginexec.exec_plugin: its result, or the error object
it printed, or its stderr).

The plugins here are tiny shell scripts in tmp_path, run for real.
"""

import os

import pytest

from pycni import errors, execpath, pluginexec
from pycni.errors import CNIError


def script(directory, name, body, mode=0o755):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


# --- find_in_path ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "/", "\\", "..", ".", "../bridge", "a/b", "a\\b",
                                  "/usr/bin/true", "..\\x"])
def test_find_in_path_rejects_bad_names(name, tmp_path):
    with pytest.raises(CNIError) as info:
        execpath.find_in_path(name, [str(tmp_path)])
    assert info.value.code == errors.INVALID_NETWORK_CONFIG


def test_find_in_path_reboot_cve(tmp_path):
    """CVE-2021-20206: a type with a path must not escape CNI_PATH."""
    with pytest.raises(CNIError) as info:
        execpath.find_in_path("../../../../bin/true", [str(tmp_path)])
    assert "path separator" in info.value.msg


def test_find_in_path_needs_paths():
    with pytest.raises(CNIError) as info:
        execpath.find_in_path("bridge", [])
    assert "no paths" in info.value.msg


def test_find_in_path_first_match_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    script(b, "p", "exit 0\n")
    script(a, "p", "exit 0\n")
    assert execpath.find_in_path("p", [str(tmp_path / "none"), str(a), str(b)]) == str(a / "p")


def test_find_in_path_skips_directories_and_non_executables(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    (a / "p").mkdir()                       # a directory
    script(b, "p", "exit 0\n", mode=0o644)  # not executable
    script(c, "p", "exit 0\n")
    assert execpath.find_in_path("p", [str(a), str(b), str(c)]) == str(c / "p")


def test_find_in_path_not_found(tmp_path):
    (tmp_path / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / "fifo")
    for name in ("missing", "fifo"):
        with pytest.raises(CNIError) as info:
            execpath.find_in_path(name, [str(tmp_path)])
        assert "failed to find plugin" in info.value.msg


def test_find_in_path_follows_symlink_to_regular_file(tmp_path):
    target = script(tmp_path, "real", "exit 0\n")
    (tmp_path / "link").symlink_to(target)
    assert execpath.find_in_path("link", [str(tmp_path)]) == str(tmp_path / "link")


# --- exec_plugin -----------------------------------------------------------------------

def test_exec_plugin_returns_stdout_and_passes_env_and_stdin(tmp_path):
    p = script(tmp_path, "p", 'cat > "$OUT_DIR/stdin"\n'
                               'echo "$CNI_COMMAND" > "$OUT_DIR/cmd"\n'
                               "printf '%s' '{\"ok\":1}'\n")
    out = pluginexec.exec_plugin(str(p), b'{"x":1}', {"CNI_COMMAND": "ADD", "OUT_DIR": str(tmp_path)})
    assert out == b'{"ok":1}'
    assert (tmp_path / "stdin").read_bytes() == b'{"x":1}'
    assert (tmp_path / "cmd").read_text() == "ADD\n"


def test_exec_plugin_error_object_parsed(tmp_path):
    p = script(tmp_path, "p", 'echo \'{"cniVersion":"1.0.0","code":11,"msg":"busy",'
                               '"details":"later"}\'\nexit 1\n')
    with pytest.raises(CNIError) as info:
        pluginexec.exec_plugin(str(p), b"{}", {})
    assert (info.value.code, info.value.msg, info.value.details) == (11, "busy", "later")


def test_exec_plugin_error_object_without_code(tmp_path):
    p = script(tmp_path, "p", 'echo \'{"msg":"something failed"}\'\nexit 1\n')
    with pytest.raises(CNIError) as info:
        pluginexec.exec_plugin(str(p), b"{}", {})
    assert "something failed" in str(info.value)


def test_exec_plugin_unparsable_stdout(tmp_path):
    p = script(tmp_path, "p", "echo 'not json'\nexit 1\n")
    with pytest.raises(CNIError) as info:
        pluginexec.exec_plugin(str(p), b"{}", {})
    assert info.value.code == errors.INTERNAL
    assert "not json" in str(info.value)


def test_exec_plugin_empty_stdout_wraps_stderr(tmp_path, capfd):
    p = script(tmp_path, "p", "echo 'it broke' >&2\nexit 3\n")
    with pytest.raises(CNIError) as info:
        pluginexec.exec_plugin(str(p), b"{}", {})
    assert info.value.msg == 'netplugin failed: "it broke"'
    assert "it broke" in capfd.readouterr().err  # stderr is passed through


def test_exec_plugin_no_output_at_all(tmp_path):
    p = script(tmp_path, "p", "exit 4\n")
    with pytest.raises(CNIError) as info:
        pluginexec.exec_plugin(str(p), b"{}", {})
    assert "no error message" in info.value.msg
    assert "4" in info.value.msg


def test_exec_plugin_stderr_not_on_stdout(tmp_path, capfd):
    p = script(tmp_path, "p", "echo log >&2\necho '{}'\n")
    assert pluginexec.exec_plugin(str(p), b"", {}) == b"{}\n"
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "log" in captured.err


def test_exec_plugin_cannot_run(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x7fELFgarbage")
    bad.chmod(0o755)
    with pytest.raises(CNIError) as info:
        pluginexec.exec_plugin(str(bad), b"", {})
    assert info.value.code == errors.INTERNAL


def test_error_from_output_prefers_the_error_object():
    err = pluginexec.error_from_output(b'{"code":11,"msg":"busy"}', b"ignored", 1)
    assert (err.code, err.msg) == (11, "busy")
    assert pluginexec.error_from_output(b"", b"", None).msg == \
        "netplugin failed with no error message"
