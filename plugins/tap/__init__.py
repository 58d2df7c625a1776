"""The tap plugin: a TAP device in the container, for VM runtimes."""
