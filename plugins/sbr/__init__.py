"""sbr: source-based routing (a chained meta plugin)."""
