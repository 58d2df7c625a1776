import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "netns-fixtures"))

try:    # pycni installed: pytest loaded its fixtures already (entry point pytest11)
    from pycni.netns_fixtures import netns_world as _netns_world, pytest_netns as _pytest_netns
except ImportError:     # an installed pycni without them: the source tree's copy
    pytest_plugins = ["pytest_netns"]
else:
    # One module object whichever name a test imports it by (`from
    # netns_world import World`): one namespace counter, one set of fixtures.
    sys.modules.setdefault("netns_world", _netns_world)
    sys.modules.setdefault("pytest_netns", _pytest_netns)
    pytest_plugins = ["pycni.netns_fixtures.pytest_netns"]

# Test stores live in temporary directories; the node setting that allows a
# config's dataDir there (pycni.nodeconf) is made for every plugin a test
# starts. Tests of the rule itself pass an environment without it.
os.environ.setdefault("PYCNI_STATE_DIRS", "/tmp")

# Property tests (hypothesis): no example database in the tree, no deadline
# on a loaded machine, and under CI the same examples every run (a random
# new example belongs to a developer's run, not to a merge gate).
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:
    pass
else:
    _hypothesis_settings.register_profile(
        "pycni-default", deadline=None, database=None,
        derandomize=os.environ.get("CI") == "true")
    _hypothesis_settings.load_profile("pycni-default")
