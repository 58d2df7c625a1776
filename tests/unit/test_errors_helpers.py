"""pycni.errors' helpers: Failures (steps that all run, one error at the
end) and on_netlink_error (a kernel refusal as a CNIError)."""

import pytest

from pycni import errors
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.netlink import NetlinkError


def test_failures_none():
    failures = errors.Failures()
    with failures:
        pass
    failures.raise_any()


def test_failures_one_is_raised_as_it_is():
    failures, ran = errors.Failures(), []
    err = CNIError(INVALID_NETWORK_CONFIG, "bad", "details")
    with failures:
        raise err
    with failures:
        ran.append("second")
    assert ran == ["second"]
    with pytest.raises(CNIError) as raised:
        failures.raise_any()
    assert raised.value is err


def test_failures_several_join_their_messages():
    failures = errors.Failures()
    for msg in ("ipam gc failed", "masquerading gc failed"):
        with failures:
            raise CNIError(INVALID_NETWORK_CONFIG, msg, "dropped")
    with pytest.raises(CNIError) as raised:
        failures.raise_any()
    assert raised.value.to_dict("1.1.0") == {
        "cniVersion": "1.1.0", "code": INTERNAL,
        "msg": "ipam gc failed; masquerading gc failed"}


def test_failures_pass_other_exceptions():
    failures = errors.Failures()
    with pytest.raises(ValueError):
        with failures:
            raise ValueError("a bug")
    failures.raise_any()


def test_on_netlink_error():
    with pytest.raises(CNIError) as raised:
        with errors.on_netlink_error('failed to set alias to "eth0"'):
            raise NetlinkError(17, "File exists")
    assert (raised.value.code, raised.value.msg, raised.value.details) == (
        INTERNAL, 'failed to set alias to "eth0"', "File exists")
    assert raised.value.__suppress_context__
    with pytest.raises(CNIError) as raised:
        with errors.on_netlink_error("x", code=INVALID_NETWORK_CONFIG):
            raise NetlinkError(1, "Operation not permitted")
    assert raised.value.code == INVALID_NETWORK_CONFIG
    with pytest.raises(OSError) as plain:       # not the kernel's answer: as it is
        with errors.on_netlink_error("x"):
            raise OSError(9, "Bad file descriptor")
    assert not isinstance(plain.value, CNIError)
    with errors.on_netlink_error("x"):
        pass
