"""Unit tests never reach the machine's kernel through a plugin's code.

The iptables backends' unit tests simulate the tables (a fake
iptables-restore and iptables-save); where iptables is iptables-nft the
teardowns would first edit nf_tables in-process (pycni.nfnetlink), in
the namespace the test runs in: the machine's own. Here that way is off
(`fwtools.iptables_nft` says no) unless a test turns it on with a fake
kernel (test_nfnetlink_removal.py); the real-kernel tests of it are in
tests/integration, inside namespaces they create.
"""

import pytest


@pytest.fixture(autouse=True)
def _no_nf_tables_edits(monkeypatch):
    from pycni import fwtools
    monkeypatch.setattr(fwtools, "iptables_nft", lambda family=4: False)
