"""What a plugin executable runs first: `serve(name)`.

A VERSION call is answered from the registry's table of supported versions
before the plugin's module (and the netlink, firewall and store code it
imports, and the launcher's pycni.bundle of compiled modules) is loaded:
a runtime asks every plugin of every network for its versions (CRI-O and
libcni's ValidateNetworkList do, on each config load), and the answer
needs none of that code (issue #12). Every other call, and a VERSION
answer that cannot be written (stdout gone: the full path reports it as
skel does), goes to the plugin module's `main()`.

tests/unit/test_entry.py checks that the registry's versions are the
plugin classes' own and that both paths print the same VERSION answer.
"""

from . import posixos as os

from .registry import PLUGINS, SUPPORTED_VERSIONS


def serve(name: str, bundle: str | None = None) -> None:
    """Run plugin `name`; `bundle` is the launcher's pycni.bundle file,
    used for the plugin's imports when it is trustworthy and current."""
    # A plugin process lives for milliseconds and makes next to no
    # reference cycles: reference counting frees what it drops, and the
    # cycle collector's passes over the thousands of objects its imports
    # create only cost time (~5 % of a bridge ADD's instructions).
    import gc
    gc.disable()
    # posixos.environ has str keys; its type is posix.environ's (bytes) for mypy
    command = os.environ.get("CNI_COMMAND")  # type: ignore[call-overload]
    if command == "VERSION" and _answer_version(SUPPORTED_VERSIONS[name]):
        os._exit(0)
    if bundle:
        from .bundle import use
        use(bundle)
    module = __import__(PLUGINS[name], fromlist=("main",))
    module.main()


def _answer_version(supported: tuple) -> bool:
    """Write the answer to fd 1; False when nothing could be written."""
    from .version import answer
    data = answer(supported).encode()
    done = 0
    while done < len(data):
        try:
            done += os.write(1, data[done:])
        except OSError:
            if done == 0:
                return False
            os._exit(1)   # half an answer is out: the call failed
    return True


def serve_module(module: str, bundle: str | None = None) -> None:
    """Run a third-party plugin (entry-point group `pycni.plugins`, see
    extplugins.py): its `module.main()`, pycni's own modules served from
    the launcher's bundle like those of pycni's plugins. There is no
    VERSION short cut: the versions a third-party plugin speaks are its
    own class's, answered by its skel.main, and no table of them could
    follow an upgrade of that package."""
    import gc
    gc.disable()
    if bundle:
        from .bundle import use
        use(bundle)
    __import__(module, fromlist=("main",)).main()
