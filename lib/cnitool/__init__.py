"""cnitool: run CNI networks by hand, like the reference cnitool."""
