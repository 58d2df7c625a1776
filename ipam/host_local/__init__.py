"""host-local IPAM plugin: see README.md."""
