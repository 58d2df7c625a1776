"""Main and meta plugins, one package per plugin."""
