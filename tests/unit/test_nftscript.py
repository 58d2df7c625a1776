"""pycni.nftscript: the table declaration and rule deletion lines shared by
the nft-script backends (portmap, firewall), checked against nft's own
reading in the integration tests of both."""

import pytest

from pycni.errors import CNIError
from pycni.nftscript import IP_FAMILY, Table


def test_declare_creates_the_table_with_its_comment_then_the_chains():
    t = Table("inet", "cni_x", "CNI x plugin")
    assert t.ref == "inet cni_x"
    assert t.declare(("a", "b")) == ['add table inet cni_x { comment "CNI x plugin" ; }',
                                     "add chain inet cni_x a", "add chain inet cni_x b"]
    assert t.declare(()) == ['add table inet cni_x { comment "CNI x plugin" ; }']


def test_delete_rule_takes_the_handle_as_a_number_only():
    t = Table("ip6", "cni_hostport", "c")
    assert t.delete_rule("hostports", 42) == "delete rule ip6 cni_hostport hostports handle 42"
    assert t.delete_rule("hostports", "7") == "delete rule ip6 cni_hostport hostports handle 7"
    with pytest.raises(ValueError):
        t.delete_rule("hostports", "7; flush ruleset")


def test_a_listed_chain_name_is_quoted_or_refused():
    t = Table("ip", "cni_hostport", "c")
    with pytest.raises(CNIError):
        t.delete_rule("a\nflush ruleset", 1)


def test_ip_family():
    assert IP_FAMILY == {4: "ip", 6: "ip6"}
