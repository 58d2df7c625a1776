"""The netns test-world fixtures, installed with pycni as `pycni.netns_fixtures`.

In the source tree these files stay in netns-fixtures/ (tests/conftest.py
puts that directory on sys.path and imports `netns_world` and
`pytest_netns` by those names); installed, pytest loads
`pycni.netns_fixtures.pytest_netns` through the `pytest11` entry point, so
any project that installs pycni gets the `world`, `plugin_dir` and
`ref_dir` fixtures (see README.md here and docs/sdk.md).
"""
