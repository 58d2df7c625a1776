"""host-device: move a host link into the container."""
