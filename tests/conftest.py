import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "netns-fixtures"))

pytest_plugins = ["pytest_netns"]

# Test stores live in temporary directories; the node setting that allows a
# config's dataDir there (pycni.nodeconf) is made for every plugin a test
# starts. Tests of the rule itself pass an environment without it.
os.environ.setdefault("PYCNI_STATE_DIRS", "/tmp")
