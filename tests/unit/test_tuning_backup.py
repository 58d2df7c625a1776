"""tuning: the backup file (format shared with the reference plugin)."""

import os
import stat

import pytest

from pycni.plugins.tuning import backup as b


def test_file_name():
    assert b.file_path("/run/cni/tuning", "abc123", "eth0") == "/run/cni/tuning/abc123_eth0.json"


def test_format_is_the_references():
    # Go's json.MarshalIndent(config, "", " ") of configToRestore
    state = b.LinkState(mac="02:11:22:33:44:55", promisc=False, mtu=1500,
                        allmulti=True, txqlen=1000)
    assert b.to_json(state) == (
        '{\n "mac": "02:11:22:33:44:55",\n "promisc": false,\n "mtu": 1500,\n'
        ' "allmulti": true,\n "txQLen": 1000\n}')


def test_only_changed_attributes_are_written():
    assert b.to_json(b.LinkState(mtu=9000)) == '{\n "mtu": 9000\n}'
    assert b.to_json(b.LinkState(txqlen=0)) == '{\n "txQLen": 0\n}'
    assert b.to_json(b.LinkState()) == "{}"


def test_round_trip():
    state = b.LinkState(mac="02:11:22:33:44:55", promisc=True, mtu=1400,
                        allmulti=False, txqlen=0)
    assert b.from_json(b.to_json(state)) == state
    assert b.from_json("{}").is_empty()


def test_reads_keys_case_insensitively_and_null():
    assert b.from_json('{"MTU": 1400, "TxQLen": 5, "mac": null}') == \
        b.LinkState(mtu=1400, txqlen=5)


@pytest.mark.parametrize("text", [
    "", "[]", "not json", '{"mtu": "1400"}', '{"promisc": 1}', '{"txQLen": true}',
    '{"mac": 5}',
])
def test_bad_files(text):
    with pytest.raises(ValueError):
        b.from_json(text)


def test_save_load_remove(tmp_path):
    path = b.file_path(str(tmp_path / "new" / "dir"), "cid", "eth0")
    assert b.load(path) is None
    b.save(path, b.LinkState(mtu=1400))
    assert b.load(path) == b.LinkState(mtu=1400)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.listdir(os.path.dirname(path)) == ["cid_eth0.json"]
    b.save(path, b.LinkState(mac="02:00:00:00:00:01"))   # replaces
    assert b.load(path) == b.LinkState(mac="02:00:00:00:00:01")
    b.remove(path)
    b.remove(path)
    assert b.load(path) is None
