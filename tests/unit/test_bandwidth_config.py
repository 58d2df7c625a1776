"""bandwidth: where the limits come from, their validation, the IFB name and
the token-bucket parameters (pure, no root)."""

import pytest

from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.plugins.bandwidth import config as c

UNSET_BURST = 4294967295   # containerd's burst when the pod sets none


def conf(**extra) -> c.BandwidthConf:
    return c.parse_config({"cniVersion": "1.0.0", "name": "net", "type": "bandwidth",
                           **extra})


def refused(**extra) -> CNIError:
    with pytest.raises(CNIError) as info:
        conf(**extra)
    assert info.value.code == INVALID_NETWORK_CONFIG
    return info.value


# --- where the limits come from -----------------------------------------------------

def test_no_limits_anywhere():
    assert conf().bandwidth is None
    assert conf(runtimeConfig={}).bandwidth is None


def test_static_keys():
    bw = conf(ingressRate=8000, ingressBurst=800, egressRate=16000, egressBurst=1600).bandwidth
    assert (bw.ingress_rate, bw.ingress_burst, bw.egress_rate, bw.egress_burst) == \
        (8000, 800, 16000, 1600)
    assert bw.shapes_ingress and bw.shapes_egress and not bw.is_zero()


def test_runtime_config_as_podman_spells_it():
    bw = conf(runtimeConfig={"bandwidth": {"ingressRate": 8000, "ingressBurst": 800}}).bandwidth
    assert bw.shapes_ingress and not bw.shapes_egress


def test_runtime_config_as_containerd_sends_it():
    bw = conf(runtimeConfig={"bandwidth": {"IngressRate": 10000000, "IngressBurst": UNSET_BURST,
                                           "EgressRate": 0, "EgressBurst": 0}}).bandwidth
    assert (bw.ingress_rate, bw.ingress_burst) == (10000000, UNSET_BURST)
    assert not bw.shapes_egress


def test_static_keys_win_as_a_whole():
    # one static key is enough to ignore runtimeConfig entirely (reference)
    bw = conf(egressRate=0, runtimeConfig={"bandwidth": {"ingressRate": 8000,
                                                         "ingressBurst": 800}}).bandwidth
    assert bw is not None and bw.is_zero()


def test_static_keys_case_insensitive():
    bw = conf(IngressRate=8000, INGRESSBURST=800).bandwidth
    assert (bw.ingress_rate, bw.ingress_burst) == (8000, 800)


def test_zero_limits():
    assert conf(ingressRate=0, ingressBurst=0).bandwidth.is_zero()


# --- validation (the reference's rules and messages) -------------------------------------

@pytest.mark.parametrize("keys, message", [
    (dict(ingressRate=8000), "if rate is set, burst must also be set"),
    (dict(egressBurst=800), "if burst is set, rate must also be set"),
    (dict(egressRate=8000, egressBurst=8 * 4294967295), "burst cannot be more than 4GB"),
    (dict(ingressRate=7, ingressBurst=800), "rate must be at least 8 bit/s"),
    (dict(ingressRate=8000, ingressBurst=7), "burst must be at least 8 bits"),
    (dict(ingressRate=-1, ingressBurst=800), "rate and burst must be a positive integer"),
])
def test_invalid_limits(keys, message):
    assert refused(**keys).msg == message


def test_invalid_runtime_config_limits_are_refused_too():
    assert refused(runtimeConfig={"bandwidth": {"EgressRate": 1000}}).msg == \
        "if rate is set, burst must also be set"


def test_largest_burst_accepted():
    bw = conf(egressRate=8000, egressBurst=8 * 4294967295 - 1).bandwidth
    assert bw.shapes_egress


def test_wrong_type():
    with pytest.raises(CNIError) as info:
        conf(ingressRate="fast", ingressBurst=8)
    assert info.value.code == INVALID_NETWORK_CONFIG


# --- IFB name ---------------------------------------------------------------------

def test_ifb_name_is_the_reference_hash():
    # observed from the reference binary for network "net1", container "abc"
    assert c.ifb_name("net1", "abc") == "bwp30f8de359c7f"
    assert len(c.ifb_name("x" * 200, "y" * 200)) == 15


# --- token bucket -----------------------------------------------------------------

# (rate bit/s, burst bits) -> (rate B/s, limit B, buffer ticks), computed by the
# reference's Go functions (buffer, limit, latencyInUsec) with tick 15.625 us.
GOLDEN = [
    (8000000, 80000, 1000000, 35000, 156250),
    (1000, 8, 125, 4, 125000),
    (8, 8, 1, 1, 15625000),
    (100000000, 1000000, 12500000, 437500, 156250),
    (10000000, 4294967, 1250000, 568120, 6710875),
    (123456789, 987654, 15432098, 509258, 124984),
    (1000000000, 80000000, 125000000, 13125000, 1250000),
    (40000000000, 8000000, 5000000000, 126000000, 3125),
    (999, 777, 124, 100, 12222781),
    (3000000, 24000, 375000, 12375, 125000),
    (100, 20000, 12, 2500, 3255208328),
]


@pytest.mark.parametrize("rate, burst, rate_b, limit, buffer", GOLDEN)
def test_tbf_params_match_the_reference(rate, burst, rate_b, limit, buffer):
    assert c.tbf_params(rate, burst) == c.TbfParams(rate_b, limit, buffer)


@pytest.mark.parametrize("rate, burst, rate_b, limit, buffer", GOLDEN)
def test_reference_mode_agrees_where_nothing_overflows(rate, burst, rate_b, limit, buffer):
    assert c.tbf_params(rate, burst, reference=True) == c.TbfParams(rate_b, limit, buffer)


def test_containerd_unset_burst_saturates_instead_of_wrapping():
    p = c.tbf_params(10000000, UNSET_BURST)
    assert (p.rate, p.limit, p.buffer) == (1250000, 31250 + 536870911, c.UINT32_MAX)
    # the reference's value, observed from its binary (Go amd64 keeps the
    # low 32 bits of 6710886375)
    assert c.tbf_params(10000000, UNSET_BURST, reference=True).buffer == 2415919079


def test_go_uint32_conversion():
    # values printed by Go 1.19 on amd64 for uint32(float64(x))
    for value, expected in [(6710886387.5, 2415919091), (4294967296.0, 0), (1e19, 0),
                            (5e9, 705032704), (-1.0, 4294967295), (9.3e18, 0)]:
        assert c._go_uint32(value) == expected


def test_check_accepts_both_plugins_values_and_the_capped_readback():
    limits, buffers = c.accepted_readbacks(10000000, UNSET_BURST)
    assert limits == {31250 + 536870911}
    assert buffers == {c.UINT32_MAX, 2415919079, 67108863}
    assert c.accepted_readbacks(8000000, 80000) == ({35000}, {156250})


def test_clock_parse():
    assert c.Clock.parse("000003e8 00000040 000f4240 3b9aca00\n").tick_in_usec == 15.625
    # an old kernel whose clock resolution is 1 GHz: ticks are microseconds
    assert c.Clock.parse("000003e8 00000040 3b9aca00 3b9aca00").tick_in_usec == 1000.0


def test_tick_size_changes_the_buffer():
    assert c.tbf_params(8000000, 80000, c.Clock(1.0)).buffer == 10000
