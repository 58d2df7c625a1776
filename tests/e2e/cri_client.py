"""A CRI client in Python, speaking to containerd as kubelet does.

The messages are compiled at test time from cri_api.proto (beside this
file: the calls and fields kubelet uses to run a pod, with the protocol's
own names and field numbers) by grpcio-tools into a temporary directory;
the stubs talk gRPC over containerd's unix socket.

    cri = CriClient("/tmp/.../containerd.sock", gen_dir)
    cri.update_pod_cidr("10.244.1.0/24")
    pod = cri.run_pod("web", ports=[(8080, 80)], cgroup_parent="/kn-a")
    ctr = cri.start_container(pod, "busybox", image, ["/bin/sh", "-c", "..."])
    out = cri.exec(ctr, ["ip", "addr"])
    cri.stop_pod(pod); cri.remove_pod(pod)
"""

import importlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cri_api.proto")


def missing() -> str | None:
    """What the client needs and is not installed (None when all is)."""
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as e:
        return f"{e.name} (pip install grpcio grpcio-tools protobuf)"
    return None


def compile_proto(out_dir: str):
    """Generate cri_api_pb2(_grpc).py into `out_dir` and import them."""
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                           f"-I{os.path.dirname(PROTO)}", f"--python_out={out_dir}",
                           f"--grpc_python_out={out_dir}", os.path.basename(PROTO)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc failed on {PROTO}: {proc.stderr}")
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    pb = importlib.import_module("cri_api_pb2")
    rpc = importlib.import_module("cri_api_pb2_grpc")
    return pb, rpc


@dataclass
class Pod:
    id: str
    name: str
    config: object                       # the PodSandboxConfig it ran with
    containers: list[str] = field(default_factory=list)


class CriClient:
    def __init__(self, socket: str, gen_dir: str, timeout: float = 120):
        import grpc
        self.pb, rpc = compile_proto(gen_dir)
        self.grpc = grpc
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime = rpc.RuntimeServiceStub(self.channel)
        self.images = rpc.ImageServiceStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def call(self, service, method: str, request, timeout: float | None = None):
        return getattr(service, method)(request, timeout=timeout or self.timeout)

    # ------------------------------------------------------------ runtime

    def version(self, timeout: float = 5):
        return self.call(self.runtime, "Version", self.pb.VersionRequest(version="v1"), timeout)

    def wait_ready(self, timeout: float = 60) -> object:
        """Version answered (the CRI plugin serves): its response."""
        end = time.monotonic() + timeout
        while True:
            try:
                return self.version()
            except self.grpc.RpcError as e:
                if time.monotonic() > end:
                    raise RuntimeError(f"containerd's CRI did not answer: {e}") from None
                time.sleep(0.2)

    def conditions(self) -> dict[str, tuple[bool, str]]:
        """RuntimeReady / NetworkReady: (status, reason + message)."""
        status = self.call(self.runtime, "Status", self.pb.StatusRequest(verbose=False))
        return {c.type: (c.status, f"{c.reason}: {c.message}") for c in status.status.conditions}

    def loaded_conflist(self) -> dict | None:
        """The pod network's conflist as containerd's CRI plugin loaded it
        (verbose Status, info["cniconfig"]: the last network is the pods',
        the first containerd's own loopback)."""
        import json
        status = self.call(self.runtime, "Status", self.pb.StatusRequest(verbose=True))
        networks = json.loads(status.info.get("cniconfig") or "{}").get("Networks") or []
        if len(networks) < 2:
            return None
        return json.loads(networks[-1]["Config"]["Source"])

    def wait_network_ready(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while True:
            ready, why = self.conditions().get("NetworkReady", (False, "no condition"))
            if ready:
                return
            if time.monotonic() > end:
                raise AssertionError(f"NetworkReady stayed false: {why}")
            time.sleep(0.2)

    def update_pod_cidr(self, cidr: str) -> None:
        """What kubelet does once it knows the node's spec.podCIDR."""
        pb = self.pb
        self.call(self.runtime, "UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=cidr))))

    def run_pod(self, name: str, log_dir: str, cgroup_parent: str = "",
                ports: list[tuple[int, int]] = (), namespace: str = "default") -> Pod:
        """RunPodSandbox; `ports` are (hostPort, containerPort) over TCP."""
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex,
                                           namespace=namespace, attempt=0),
            hostname=name, log_directory=log_dir,
            port_mappings=[pb.PortMapping(protocol=pb.TCP, host_port=h, container_port=c)
                           for h, c in ports],
            labels={"app": name},
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent))
        reply = self.call(self.runtime, "RunPodSandbox", pb.RunPodSandboxRequest(config=config))
        return Pod(reply.pod_sandbox_id, name, config)

    def pod_status(self, pod: Pod):
        return self.call(self.runtime, "PodSandboxStatus",
                         self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod.id)).status

    def pod_ip(self, pod: Pod) -> str:
        return self.pod_status(pod).network.ip

    def start_container(self, pod: Pod, name: str, image: str, command: list[str]) -> str:
        """CreateContainer + StartContainer, as kubelet starts a pod's container."""
        pb = self.pb
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=0),
            image=pb.ImageSpec(image=image), command=command,
            log_path=f"{name}.log", labels={"container": name})
        reply = self.call(self.runtime, "CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod.id, config=config, sandbox_config=pod.config))
        pod.containers.append(reply.container_id)
        self.call(self.runtime, "StartContainer",
                  pb.StartContainerRequest(container_id=reply.container_id))
        return reply.container_id

    def container_state(self, container_id: str) -> str:
        status = self.call(self.runtime, "ContainerStatus",
                           self.pb.ContainerStatusRequest(container_id=container_id)).status
        return self.pb.ContainerState.Name(status.state)

    def exec(self, container_id: str, cmd: list[str], timeout: int = 20
             ) -> tuple[int, str, str]:
        """ExecSync (what a probe or `kubectl exec` without a tty uses)."""
        reply = self.call(self.runtime, "ExecSync", self.pb.ExecSyncRequest(
            container_id=container_id, cmd=cmd, timeout=timeout), timeout=timeout + 30)
        return (reply.exit_code, reply.stdout.decode(errors="replace"),
                reply.stderr.decode(errors="replace"))

    def stop_pod(self, pod: Pod) -> None:
        """What kubelet does when a pod is deleted: its containers stop,
        then the sandbox (the CNI DEL runs here)."""
        pb = self.pb
        for cid in pod.containers:
            self.call(self.runtime, "StopContainer",
                      pb.StopContainerRequest(container_id=cid, timeout=0))
        self.call(self.runtime, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod.id))

    def remove_pod(self, pod: Pod) -> None:
        pb = self.pb
        for cid in pod.containers:
            self.call(self.runtime, "RemoveContainer", pb.RemoveContainerRequest(container_id=cid))
        pod.containers.clear()
        self.call(self.runtime, "RemovePodSandbox",
                  pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))

    # ------------------------------------------------------------- images

    def has_image(self, ref: str) -> bool:
        reply = self.call(self.images, "ImageStatus",
                          self.pb.ImageStatusRequest(image=self.pb.ImageSpec(image=ref)))
        return bool(reply.image.id)
