"""deploy/kubernetes/pycni.yaml: validated offline against Kubernetes'
OpenAPI-derived JSON schemas (kubernetes-validate from PyPI ships them;
strict: an unknown field is an error), and checked to fit the installer
and the image it runs."""

import copy
import json
import os

import pytest

from pytest_netns import missing_prerequisite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join(ROOT, "deploy", "kubernetes", "pycni.yaml")
IMAGE_TEMPLATE = os.path.join(ROOT, "deploy", "image", "10-pycni.conflist.template")
# The oldest Kubernetes release still in wide use, a middle one, the newest
# the validator knows.
VERSIONS = ("1.28.0", "1.33.0", "latest")


@pytest.fixture(scope="module")
def kv():
    try:
        import kubernetes_validate.utils as utils
    except ImportError:
        missing_prerequisite("kubernetes-validate is not installed (scripts/install-deps.sh)")
    return utils


@pytest.fixture(scope="module")
def docs():
    yaml = pytest.importorskip("yaml")      # a dependency of kubernetes-validate
    with open(MANIFEST) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def by_kind(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}"
    return found[0]


def validate(kv, doc, version):
    version = kv.latest_version() if version == "latest" else version
    return kv.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_document_is_valid_for_kubernetes(kv, docs, version):
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "DaemonSet", "Namespace",
                                               "ServiceAccount"]
    for doc in docs:
        validate(kv, doc, version)


@pytest.mark.parametrize("break_it, where", [
    (lambda ds: ds["spec"]["template"]["spec"].update(tolerashuns=[]), "tolerashuns"),
    (lambda ds: ds["spec"]["template"]["spec"]["initContainers"][0].update(args="install-cni"),
     "args"),
    (lambda ds: ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"].update(type=7), "type"),
    (lambda ds: ds["spec"].pop("selector"), "selector"),
])
def test_the_validator_rejects_a_broken_daemonset(kv, docs, break_it, where):
    """The schemas have teeth: each mistake is an error, not a warning."""
    broken = copy.deepcopy(by_kind(docs, "DaemonSet"))
    break_it(broken)
    with pytest.raises(kv.ValidationError) as err:
        validate(kv, broken, "latest")
    assert where in str(err.value)


def pod_spec(docs):
    return by_kind(docs, "DaemonSet")["spec"]["template"]["spec"]


def test_daemonset_runs_everywhere_as_node_critical(docs):
    spec = pod_spec(docs)
    assert spec["priorityClassName"] == "system-node-critical"
    # Tolerates every taint: no key, operator Exists, no effect.
    assert {"operator": "Exists"} in spec["tolerations"]
    assert spec["hostNetwork"] is True
    assert spec["automountServiceAccountToken"] is False
    sa = by_kind(docs, "ServiceAccount")
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    namespace = by_kind(docs, "Namespace")["metadata"]["name"]
    assert all(d["metadata"].get("namespace", namespace) == namespace for d in docs)
    ds = by_kind(docs, "DaemonSet")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_init_container_installs_into_the_mounts_the_installer_uses(docs):
    from pycni import installcni
    spec = pod_spec(docs)
    (init,) = spec["initContainers"]
    assert init["args"] == ["install-cni"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    host = {volumes[n]["hostPath"]["path"]: p for n, p in mounts.items()
            if "hostPath" in volumes[n]}
    assert host == {"/opt/cni/bin": installcni.DEFAULT_BIN_DIR,
                    "/etc/cni/net.d": installcni.DEFAULT_NET_DIR}
    env = {e["name"]: e for e in init["env"]}
    assert env["KUBERNETES_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    for name, entry in env.items():     # every value the installer reads is a valid one
        if "value" in entry and name.startswith("PYCNI_") and entry["value"] in ("true", "false"):
            installcni.env_flag({name: entry["value"]}, name)
    # The template the ConfigMap mounts is where the installer is told to look.
    template_path = env["PYCNI_CONFLIST_TEMPLATE"]["value"]
    cm = by_kind(docs, "ConfigMap")
    cm_mount = [m for m in init["volumeMounts"] if volumes[m["name"]].get("configMap")]
    assert volumes[cm_mount[0]["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    assert os.path.dirname(template_path) == cm_mount[0]["mountPath"]
    assert os.path.basename(template_path) in cm["data"]


def test_configmap_template_renders_and_matches_the_image_default(docs):
    from pycni import installcni
    text = by_kind(docs, "ConfigMap")["data"]["10-pycni.conflist.template"]
    with open(IMAGE_TEMPLATE) as f:
        assert json.loads(text) == json.loads(f.read())
    out = json.loads(installcni.render_template(text, {"__POD_CIDR__": "10.244.3.0/24"}))
    bridge = out["plugins"][0]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    # Kubernetes' network model: pod-to-pod without NAT.
    assert bridge["ipMasq"] is False
    from pycni.registry import PLUGINS
    assert set(installcni.plugin_types(out)) <= set(PLUGINS)


def test_both_containers_run_pycnis_image_of_this_version(docs):
    from pycni import installcni
    spec = pod_spec(docs)
    images = {c["image"] for c in spec["initContainers"] + spec["containers"]}
    assert images == {f"localhost/pycni:v{installcni.pycni_version()}"}
    (main,) = spec["containers"]
    assert main["args"] == ["pause"]
    assert main["securityContext"]["runAsNonRoot"] is True
    for c in spec["initContainers"] + spec["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"]["drop"] == ["ALL"]
