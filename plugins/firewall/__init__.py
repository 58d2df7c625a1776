"""firewall: let container traffic through the host's forward filtering (chained)."""
