"""Container images built here, for a containerd that can pull nothing.

`oci_archive()` writes an OCI image-layout tarball (oci-layout, index.json,
blobs/sha256/...) of one uncompressed layer holding Debian's static
busybox (busybox-static) and the applet links the tests use; `ctr images
import` reads it and names the image after the index's
`io.containerd.image.name` annotation. One archive holds two images:
the pods' busybox and the sandbox ("pause") image, which only sleeps.
/www holds index.html and cgi-bin/peer for busybox httpd.
"""

import hashlib
import io
import json
import tarfile

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ip", "ping", "nc", "httpd", "wget", "sleep", "cat", "echo", "printf", "ls",
           "true")
IMAGE = "localhost/pycni-busybox:e2e"
PAUSE_IMAGE = "localhost/pycni-pause:e2e"
# busybox httpd runs it for GET /cgi-bin/peer: the client's address as the
# serving pod sees it (what tells NAT from no NAT).
PEER_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n"


def _layer(index_html: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in (("bin", 0o755), ("www", 0o755), ("www/cgi-bin", 0o755),
                        ("tmp", 0o1777), ("proc", 0o555),
                        ("sys", 0o555), ("dev", 0o755), ("etc", 0o755)):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        info = tar.gettarinfo(BUSYBOX, "bin/busybox")
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        with open(BUSYBOX, "rb") as f:
            tar.addfile(info, f)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for name, text, mode in (("www/index.html", index_html, 0o644),
                                 ("www/cgi-bin/peer", PEER_CGI, 0o755),
                                 ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n", 0o644),
                                 ("etc/group", "root:x:0:\n", 0o644)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(blobs: dict, data: bytes, media_type: str) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def oci_archive(target: str, index_html: str) -> str:
    """Write the archive of IMAGE and PAUSE_IMAGE to `target`."""
    blobs: dict[str, bytes] = {}
    layer = _layer(index_html)
    layer_desc = _blob(blobs, layer, "application/vnd.oci.image.layer.v1.tar")
    manifests = []
    for name, entrypoint in ((IMAGE, ["/bin/sh"]),
                             (PAUSE_IMAGE, ["/bin/sleep", "2147483647"])):
        config = {
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": entrypoint, "WorkingDir": "/",
                       "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        }
        config_desc = _blob(blobs, json.dumps(config, sort_keys=True).encode(),
                            "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer_desc]}
        desc = _blob(blobs, json.dumps(manifest, sort_keys=True).encode(),
                     "application/vnd.oci.image.manifest.v1+json")
        desc["annotations"] = {"io.containerd.image.name": name,
                               "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
        desc["platform"] = {"architecture": "amd64", "os": "linux"}
        manifests.append(desc)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index).encode()}
    files.update({f"blobs/sha256/{d.split(':', 1)[1]}": data for d, data in blobs.items()})
    with tarfile.open(target, "w") as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return target
