"""tuning plugin: see README.md."""
