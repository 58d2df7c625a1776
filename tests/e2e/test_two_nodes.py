"""Two Kubernetes nodes on one machine: a containerd in each node's network
namespace, driven over the CRI gRPC API as kubelet drives it, with our
plugins (installed by `pycni install --dir`) and our containerd
conf_template (deploy/containerd/10-pycni.conflist.tmpl).

The topology and how each containerd is confined are in cri_node.py; the
CRI client (Python grpcio, messages compiled from cri_api.proto) is
cri_client.py; the busybox and sandbox images, built here and imported with
`ctr images import`, are cri_image.py.

What kubelet would do and the test does: UpdateRuntimeConfig with the
node's podCIDR (containerd renders the template into its conf_dir), then
per pod RunPodSandbox, CreateContainer + StartContainer, ExecSync (a probe,
`kubectl exec`), and on deletion StopContainer, StopPodSandbox,
RemoveContainer, RemovePodSandbox.
"""

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import cri_client
import cri_image
import cri_node
from pytest_netns import missing_prerequisite

pytestmark = [pytest.mark.netns]

HTTPD = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]     # IPv6 and IPv4
HOST_PORT = 8080
POD_CIDR6 = "fd00:10:244:1::/64"


@pytest.fixture(scope="module", params=["pycni", "reference"])
def cluster(request, tmp_path_factory):
    """Two nodes running our plugins, then the same two nodes running the
    reference plugins (Debian's containernetworking-plugins) on the same
    template: every test below holds for both."""
    check_prerequisites()
    impl = request.param
    bin_dir = request.getfixturevalue("plugin_dir" if impl == "pycni" else "ref_dir")
    workdir = str(tmp_path_factory.mktemp(f"kn-{impl}"))
    gen_dir = os.path.join(workdir, "cri-gen")
    os.makedirs(gen_dir)
    token = f"hello from pycni {os.urandom(6).hex()}"
    archive = cri_image.oci_archive(os.path.join(workdir, "images.tar"), token + "\n")
    cluster = cri_node.Cluster(workdir, bin_dir, label=impl[:3])
    cluster.token = token
    try:
        cluster.build()
        cluster.start(gen_dir, archive)
        cluster.before_update = {n.name: n.cri.conditions()["NetworkReady"] for n in cluster.nodes}
        for node in cluster.nodes:
            node.cri.update_pod_cidr(node.pod_cidr)       # kubelet, once it knows spec.podCIDR
        for node in cluster.nodes:
            node.cri.wait_network_ready()
        yield cluster
    finally:
        for node in cluster.nodes:
            for pod in list(node.pods):
                try:
                    node.cri.stop_pod(pod)
                    node.cri.remove_pod(pod)
                except Exception as e:      # reported below, cleanup goes on
                    print(f"node {node.name}: removing pod {pod.name}: {e}")
        problems = cluster.close()
        left = cri_node.leftover_namespaces(cluster.prefix)
        for problem in problems:
            print(f"two-node cleanup: {problem}")
        assert not left, f"the two-node test left namespaces behind: {left}"


@pytest.fixture(params=["pycni", "reference"])
def dual_stack_node(request, tmp_path_factory):
    """One node whose kubelet sends two podCIDRs, IPv4 and IPv6, as a
    dual-stack cluster's does (comma-separated in `pod_cidr`)."""
    check_prerequisites()
    impl = request.param
    bin_dir = request.getfixturevalue("plugin_dir" if impl == "pycni" else "ref_dir")
    workdir = str(tmp_path_factory.mktemp(f"kn-ds-{impl}"))
    gen_dir = os.path.join(workdir, "cri-gen")
    os.makedirs(gen_dir)
    archive = cri_image.oci_archive(os.path.join(workdir, "images.tar"), "dual stack\n")
    cluster = cri_node.Cluster(workdir, bin_dir, label=f"ds{impl[:1]}", nodes=("a",))
    try:
        cluster.build()
        node = cluster.nodes[0]
        node.pod_cidr6 = POD_CIDR6
        node.start(gen_dir, archive)
        node.cri.update_pod_cidr(f"{node.pod_cidr},{node.pod_cidr6}")
        node.cri.wait_network_ready()
        yield node
    finally:
        for node in cluster.nodes:
            for pod in list(node.pods):
                try:
                    node.cri.stop_pod(pod)
                    node.cri.remove_pod(pod)
                except Exception as e:
                    print(f"node {node.name}: removing pod {pod.name}: {e}")
        for problem in cluster.close():
            print(f"dual-stack cleanup: {problem}")
        left = cri_node.leftover_namespaces(cluster.prefix)
        assert not left, f"the dual-stack test left namespaces behind: {left}"


def check_prerequisites() -> None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        missing_prerequisite("the two-node test needs root and iproute2")
    missing = cri_node.missing_tools()
    if missing:
        missing_prerequisite("the two-node test needs " + ", ".join(missing) +
                             " (apt-get install containerd runc busybox-static)")
    lacking = cri_client.missing()
    if lacking:
        missing_prerequisite(f"the two-node test's CRI client needs {lacking}")


# ------------------------------------------------------------------ helpers

def run_pod(node, name: str, ports=(), command=HTTPD):
    """A pod with one busybox container serving /www over HTTP."""
    pod = node.cri.run_pod(name, node.pod_logs, node.cgroup_parent, ports=list(ports))
    node.pods.append(pod)
    pod.ctr = node.cri.start_container(pod, "main", cri_image.IMAGE, command)
    pod.ip = node.cri.pod_ip(pod)
    pod.node = node
    return pod


def remove_pod(pod, stops: int = 1) -> None:
    """Stop the pod (`stops` times: kubelet retries StopPodSandbox, and
    each call may run the CNI DEL again), then remove it."""
    node = pod.node
    for _ in range(stops):
        node.cri.stop_pod(pod)
    node.cri.remove_pod(pod)
    node.pods.remove(pod)


def exec_ok(pod, *cmd, timeout: int = 20) -> str:
    code, out, err = pod.node.cri.exec(pod.ctr, list(cmd), timeout=timeout)
    assert code == 0, f"{' '.join(cmd)} in pod {pod.name} on node {pod.node.name}: " \
                      f"exit {code}\n{err}{out}"
    return out


def wget(pod, url: str, tries: int = 3) -> str:
    """GET `url` from inside `pod` (busybox wget), a few tries while the
    server starts. (Debian's busybox 1.35 wget crashes with -T: ExecSync's
    timeout bounds it instead.)"""
    last = ""
    for _ in range(tries):
        code, out, err = pod.node.cri.exec(
            pod.ctr, ["wget", "-q", "-O", "-", url], timeout=15)
        if code == 0:
            return out
        last = err + out
        exec_ok(pod, "sleep", "0.3")
    raise AssertionError(f"wget {url} from pod {pod.name} on node {pod.node.name}: {last}")


def peer_seen(client, url: str) -> str:
    """GET `url` (cgi-bin/peer) from pod `client`: the client address the
    serving httpd saw."""
    return wget(client, url).strip().strip("[]").removeprefix("::ffff:")


def node_wget(node, url: str, tries: int = 10) -> str:
    """GET `url` from the node itself (its network namespace)."""
    last = ""
    for _ in range(tries):
        proc = node.run("busybox", "wget", "-q", "-O", "-", url, check=False)
        if proc.returncode == 0:
            return proc.stdout.decode()
        last = proc.stderr.decode()
        time.sleep(0.3)
    raise AssertionError(f"wget {url} from node {node.name}: {last}")


def rendered_template(*pod_cidrs: str) -> dict:
    """What containerd renders deploy/containerd/10-pycni.conflist.tmpl to
    for these podCIDRs: the template's two range loops (.PodCIDRRanges,
    .Routes: a default route per family) played here."""
    with open(cri_node.TEMPLATE) as f:
        text = f.read()
    routes = [("::/0" if ":" in c else "0.0.0.0/0") for c in pod_cidrs]

    def loop(var: str, values: list[str]):
        def render(m):
            return ", ".join(m.group(1).replace("{{$%s}}" % var, v) for v in values)
        return render
    text = re.sub(r"\{\{range \$i, \$range := \.PodCIDRRanges\}\}\{\{if \$i\}\}, \{\{end\}\}"
                  r"(.*?)\{\{end\}\}", loop("range", list(pod_cidrs)), text, flags=re.S)
    text = re.sub(r"\{\{range \$i, \$route := \.Routes\}\}\{\{if \$i\}\}, \{\{end\}\}"
                  r"(.*?)\{\{end\}\}", loop("route", routes), text, flags=re.S)
    assert "{{" not in text, text
    return json.loads(text)


def leftovers(node, pods) -> list[str]:
    """What the removed `pods` left on `node`: veths, host-local
    allocations, libcni's cached results, pod netns mounts, firewall rules
    and per-pod chains."""
    found = [f"veth {v}" for v in node.veths()]
    found += [f"allocation {a}" for a in node.allocations()]
    found += [f"cached result {r}" for r in node.cached_results()]
    found += [f"pod netns {n}" for n in node.pod_netns()]
    ruleset = node.firewall()
    needles = [p.id[:12] for p in pods] + [p.ip for p in pods]
    for line in ruleset.splitlines():
        if line.startswith(":CNI-") and line.split()[0][1:] not in (
                "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK",
                "CNI-FORWARD", "CNI-ADMIN"):
            found.append(f"chain {line.split()[0][1:]}")
        elif any(n and re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", line) for n in needles):
            found.append(f"rule {line.strip()}")
    return found


def own_masquerade(node) -> list[str]:
    """iptables MASQUERADE rules on `node` but portmap's shared one."""
    return [line for line in node.firewall().splitlines()
            if line.startswith("-A") and "MASQUERADE" in line
            and not line.startswith("-A CNI-HOSTPORT-MASQ")]


def swap_conflist(node, **changes) -> dict:
    """Rewrite the node's rendered conflist with `changes` to the bridge
    entry (atomically: containerd reloads conf_dir on every change);
    returns the previous one."""
    before = node.conflist()
    conf = json.loads(json.dumps(before))
    conf["plugins"][0].update(changes)
    write_conflist(node, conf)
    return before


def write_conflist(node, conf: dict) -> None:
    path = os.path.join(node.conf_dir, cri_node.CONFLIST)
    with open(path + ".tmp", "w") as f:
        json.dump(conf, f, indent=2)
    os.replace(path + ".tmp", path)
    # containerd's conf_dir watcher picks the change up asynchronously
    for _ in range(100):
        if node.cri.loaded_conflist() == conf:
            return
        time.sleep(0.1)
    raise AssertionError(f"node {node.name}: containerd did not load the new conflist")


# -------------------------------------------------------------------- tests

def test_update_runtime_config_renders_our_template(cluster):
    """Before kubelet's UpdateRuntimeConfig the node has no network (no
    conflist, NetworkReady false); after it, containerd wrote our template
    with the node's podCIDR, and the CRI plugin loaded it."""
    for node in cluster.nodes:
        ready, why = cluster.before_update[node.name]
        assert ready is False, why
        assert node.conflist() == rendered_template(node.pod_cidr)
        assert os.listdir(node.conf_dir) == [cri_node.CONFLIST]
        assert node.cri.conditions()["NetworkReady"][0] is True
        assert node.cri.loaded_conflist() == node.conflist()


def test_pods_reach_each_other_on_one_node_and_across_nodes(cluster):
    a, b = cluster.nodes
    pods = [run_pod(a, "a1"), run_pod(a, "a2"), run_pod(b, "b1"), run_pod(b, "b2")]
    try:
        for pod in pods:
            assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(pod.node.pod_cidr), \
                (pod.name, pod.ip)
            assert pod.node.cri.container_state(pod.ctr) == "CONTAINER_RUNNING"
            addrs = exec_ok(pod, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
            assert f"inet {pod.ip}/24" in addrs
            routes = exec_ok(pod, "ip", "route")
            gateway = str(ipaddress.ip_network(pod.node.pod_cidr)[1])
            assert f"default via {gateway} dev eth0" in routes
        a1, a2, b1, b2 = pods
        assert len({p.ip for p in pods}) == 4
        # ping: same node, across nodes, both ways
        for src, dst in ((a1, a2), (a1, b1), (b2, a2), (b1, b2)):
            exec_ok(src, "ping", "-c", "1", "-W", "3", dst.ip)
        # TCP (nc to the httpd), and HTTP across nodes with the source address
        exec_ok(a2, "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {b2.ip} 80 "
                                f"| grep -q '{cluster.token}'")
        assert wget(b1, f"http://{a1.ip}/").strip() == cluster.token
        # Kubernetes: pod to pod without NAT, on one node and across nodes
        assert peer_seen(a1, f"http://{b1.ip}/cgi-bin/peer") == a1.ip
        assert peer_seen(b2, f"http://{a2.ip}/cgi-bin/peer") == b2.ip
        assert peer_seen(a1, f"http://{a2.ip}/cgi-bin/peer") == a1.ip
    finally:
        for pod in pods:
            remove_pod(pod)
    for node in cluster.nodes:
        assert leftovers(node, pods) == []


def test_host_port_on_one_node_answers_from_the_other(cluster):
    a, b = cluster.nodes
    web = run_pod(a, "web", ports=[(HOST_PORT, 80)])
    client = run_pod(b, "client")
    try:
        url = f"http://{a.address}:{HOST_PORT}/"
        # from node B itself, and from a pod on node B
        assert node_wget(b, url).strip() == cluster.token
        assert wget(client, url).strip() == cluster.token
        # the DNAT keeps the client's address: the pod on B is seen as itself
        assert peer_seen(client, url + "cgi-bin/peer") == client.ip
        # and on node A itself: its own address and, with the template's
        # `snat: true`, 127.0.0.1 (portmap's OUTPUT DNAT)
        assert node_wget(a, url).strip() == cluster.token
        assert node_wget(a, f"http://127.0.0.1:{HOST_PORT}/").strip() == cluster.token
        assert f"dport {HOST_PORT}" in a.firewall()
    finally:
        remove_pod(web, stops=2)
        remove_pod(client)
    for node in cluster.nodes:
        assert leftovers(node, [web, client]) == []
    assert f"dport {HOST_PORT}" not in a.firewall()


def test_ip_masq_true_hides_pod_addresses_across_nodes(cluster):
    """What `ipMasq: true` (the bridge plugin's masquerade) does to cross-
    node pod traffic: the pod on B sees node A's underlay address, not the
    pod on A, which breaks Kubernetes' "pods reach each other without NAT".
    Traffic to the pod's own node subnet stays as it is."""
    a, b = cluster.nodes
    server = run_pod(b, "srv")
    before = swap_conflist(a, ipMasq=True)
    try:
        masq = run_pod(a, "masq")
        neighbour = run_pod(a, "neighbour")
        assert peer_seen(masq, f"http://{server.ip}/cgi-bin/peer") == a.address
        assert peer_seen(masq, f"http://{neighbour.ip}/cgi-bin/peer") == masq.ip
        # the bridge plugin's rule: from the pod's address to its own chain
        assert any(line.startswith("-A POSTROUTING") and f"-s {masq.ip}/32" in line
                   for line in a.firewall().splitlines())
        remove_pod(masq)
        remove_pod(neighbour)
        assert leftovers(a, [masq, neighbour]) == []
    finally:
        write_conflist(a, before)
        for pod in list(a.pods):
            remove_pod(pod)
        remove_pod(server)
    assert own_masquerade(a) == []


def test_kubernetes_model_ipmasq_off_with_a_node_masquerade_exception(cluster):
    """The config that satisfies Kubernetes: the shipped template's
    `ipMasq: false`, and (for traffic leaving the cluster) one node rule that
    masquerades what goes from the podCIDR to anything outside the cluster
    CIDR (what ip-masq-agent installs): pod to pod keeps its address,
    pod to the underlay is seen as the node."""
    a, b = cluster.nodes
    www = os.path.join(cluster.workdir, "underlay-www")
    os.makedirs(os.path.join(www, "cgi-bin"), exist_ok=True)
    with open(os.path.join(www, "cgi-bin", "peer"), "w") as f:
        f.write(cri_image.PEER_CGI)
    os.chmod(os.path.join(www, "cgi-bin", "peer"), 0o755)
    rule = ["-s", a.pod_cidr, "!", "-d", cri_node.CLUSTER_CIDR, "-j", "MASQUERADE"]
    a.run("iptables", "-t", "nat", "-A", "POSTROUTING", *rule)
    httpd = subprocess.Popen(["ip", "netns", "exec", cluster.underlay, "busybox", "httpd", "-f",
                              "-p", f"{cri_node.UNDERLAY_GW}:8000", "-h", www],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pods = []
    try:
        pods = [run_pod(a, "egress"), run_pod(b, "peer")]
        egress, peer = pods
        assert peer_seen(egress, f"http://{cri_node.UNDERLAY_GW}:8000/cgi-bin/peer") == a.address
        assert peer_seen(egress, f"http://{peer.ip}/cgi-bin/peer") == egress.ip
        assert peer_seen(peer, f"http://{egress.ip}/cgi-bin/peer") == peer.ip
    finally:
        httpd.kill()
        httpd.wait()
        for pod in pods:
            remove_pod(pod)
        a.run("iptables", "-t", "nat", "-D", "POSTROUTING", *rule)
    for node in cluster.nodes:
        assert leftovers(node, pods) == []


def test_exhausted_pod_cidr_fails_run_pod_sandbox_and_leaves_nothing(cluster):
    """A node whose pod range is used up (here: narrowed to one address):
    the second pod's CNI ADD fails (host-local has no address left),
    RunPodSandbox reports the plugin's error, and the failed pod leaves no
    veth, allocation, cache entry, netns or rule."""
    import grpc
    a, _ = cluster.nodes
    one = str(ipaddress.ip_network(a.pod_cidr)[10])
    before = swap_conflist(a, ipam={
        "type": "host-local",
        "ranges": [[{"subnet": a.pod_cidr, "rangeStart": one, "rangeEnd": one}]],
        "routes": [{"dst": "0.0.0.0/0"}]})
    pods = []
    try:
        pods.append(run_pod(a, "first"))
        assert pods[0].ip == one
        with pytest.raises(grpc.RpcError) as failed:
            run_pod(a, "second")
        # the reference's words, passed on by containerd
        assert (f'plugin type="bridge" failed (add): failed to allocate for range 0: '
                f"no IP addresses available in range set: {one}-{one}") in failed.value.details()
        assert len(a.veths()) == 1
        assert a.allocations() == [one]
        assert len(a.pod_netns()) == 1
    finally:
        for pod in pods:
            remove_pod(pod)
        write_conflist(a, before)
    assert leftovers(a, pods) == []


def test_dual_stack_pod_cidrs_give_pods_both_families(dual_stack_node):
    """Two podCIDRs through UpdateRuntimeConfig: the template renders a
    range set and a default route per family, and each pod gets an IPv4
    and an IPv6 address from the node's ranges and reaches the other pod
    over both."""
    node = dual_stack_node
    assert node.conflist() == rendered_template(node.pod_cidr, node.pod_cidr6)
    assert node.cri.loaded_conflist() == node.conflist()
    pods = [run_pod(node, "ds1"), run_pod(node, "ds2")]
    try:
        six = []
        for pod in pods:
            status = node.cri.pod_status(pod).network
            assert ipaddress.ip_address(status.ip) in ipaddress.ip_network(node.pod_cidr)
            extra = [ip.ip for ip in status.additional_ips]
            assert len(extra) == 1, extra
            assert ipaddress.ip_address(extra[0]) in ipaddress.ip_network(node.pod_cidr6)
            six.append(extra[0])
            routes6 = exec_ok(pod, "ip", "-6", "route")
            assert f"default via {ipaddress.ip_network(node.pod_cidr6)[1]} dev eth0" in routes6
        exec_ok(pods[0], "ping", "-c", "1", "-W", "3", pods[1].ip)
        exec_ok(pods[0], "ping", "-c", "1", "-W", "3", six[1])
        assert peer_seen(pods[1], f"http://[{six[0]}]/cgi-bin/peer") == six[1]
    finally:
        for pod in pods:
            remove_pod(pod)
    assert leftovers(node, pods) == []

