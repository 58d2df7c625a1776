"""decode.lenient: the DEL decode plugin authors get (issue #16): it never
fails on a value, keeps what it can, and matches keys as decode does."""

import pytest

from pycni.config import IPAMConf, NetConf
from pycni.decode import DecodeError, decode, lenient
from pycni.model import dataclass, field


@dataclass
class Hop:
    dst: str = ""
    gw: str = ""
    metric: int = 0


@dataclass
class Required:
    name: str
    count: int
    hop: Hop


@dataclass
class Conf(NetConf):
    mtu: int = 1500
    hairpin: bool = False
    hops: list[Hop] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    extra: Hop | None = None


def test_agrees_with_decode_on_a_valid_config():
    raw = {"cniVersion": "1.0.0", "name": "n", "type": "t", "MTU": 9000,
           "ipam": {"type": "host-local"}, "hops": [{"dst": "10.0.0.0/8", "metric": 3}],
           "tags": ["a"], "extra": {"gw": "10.0.0.1"}}
    assert lenient(Conf, raw) == decode(Conf, raw)


@pytest.mark.parametrize("key, value", [
    ("mtu", "9000"), ("mtu", 1.5), ("mtu", 1 << 70), ("hairpin", "yes"),
    ("tags", ["a", 1]), ("tags", "a"), ("ipam", "host-local"), ("hops", {"dst": "x"}),
    ("extra", 7),
])
def test_a_bad_value_keeps_the_default(key, value):
    raw = {"name": "n", "ipam": {"type": "host-local"}, key: value}
    if key == "ipam":
        raw.pop("ipam")
        raw["ipam"] = value
    with pytest.raises(DecodeError):
        decode(Conf, raw)
    conf = lenient(Conf, raw)
    default = Conf()
    assert getattr(conf, key) == getattr(default, key)
    if key != "ipam":
        assert conf.ipam == IPAMConf(type="host-local")


def test_nested_values_are_lenient_too():
    raw = {"ipam": {"type": 5}, "hops": [{"dst": "a", "metric": "x"}, 7, {"gw": True}]}
    conf = lenient(Conf, raw)
    assert conf.ipam.type == ""
    assert conf.hops == [Hop(dst="a"), Hop()]


def test_an_earlier_good_key_survives_a_later_bad_one():
    """Go applies keys in document order; a value it cannot decode is skipped here."""
    assert lenient(Conf, {"mtu": 1400, "MTU": "big"}).mtu == 1400
    assert lenient(Conf, {"mtu": "big", "MTU": 1400}).mtu == 1400


def test_missing_required_fields_get_zero_values():
    assert lenient(Required, {"count": "x"}) == Required(name="", count=0, hop=Hop())


@pytest.mark.parametrize("raw", [None, [], "text", 3])
def test_no_object_at_all_gives_the_defaults(raw):
    assert lenient(Conf, raw) == Conf()


def test_ptp_delete_reads_its_config_leniently():
    """ptp's DEL (as the reference's, which reads only what it releases)
    goes on whatever else in the config ADD would refuse."""
    from pycni.plugins.ptp import config
    d = config.load_for_delete({"ipam": {"type": "host-local"}, "IPAM": {"subnet": 1},
                                "ipMasq": True, "mtu": "x", "ipMasqBackend": 5, "dns": []})
    assert (d.ipam_type, d.ip_masq) == ("host-local", True)
    d = config.load_for_delete({"ipam": {"type": 3}, "ipMasq": "true"})
    assert (d.ipam_type, d.ip_masq) == ("", False)
