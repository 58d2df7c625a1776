"""IPAM plugins, one package per plugin."""
