"""loopback plugin: see README.md."""
