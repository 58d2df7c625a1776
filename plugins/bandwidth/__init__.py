"""bandwidth plugin: see README.md."""
