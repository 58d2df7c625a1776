"""static IPAM plugin: see README.md."""
