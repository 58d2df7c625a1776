"""A stand-in for lint.probe.Prober: plugins 'found' on a fake CNI_PATH,
answering VERSION with what pycni's plugins answer (registry), no program
run, no file looked at."""

from pycni import registry
from pycni import version as spec


class FakeProbe:
    def __init__(self, missing=(), versions=None, stores=None, runtime_only=()):
        self.dirs = ["/opt/cni/bin"]
        self.source = "CNI_PATH"
        self.missing = set(missing)
        self.runtime_only = set(runtime_only)
        self.versions_of = dict(versions or {})
        self.stores = dict(stores or {})
        self.asked = []

    def find(self, name):
        if name in self.runtime_only:
            return None, f"/opt/cni/bin/{name}", ["/opt/cni/bin: /opt/cni/bin is writable by others"]
        if name in self.missing:
            return None, None, []
        return f"/opt/cni/bin/{name}", f"/opt/cni/bin/{name}", []

    def versions(self, path):
        name = path.rsplit("/", 1)[-1]
        self.asked.append(name)
        if name in self.versions_of:
            return self.versions_of[name], "" if self.versions_of[name] else "no answer"
        return list(registry.SUPPORTED_VERSIONS.get(name, spec.ALL)), ""

    def store_problem(self, directory):
        return self.stores.get(directory)
