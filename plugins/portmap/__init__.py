"""portmap: forward host ports to a container (chained after an interface plugin)."""
