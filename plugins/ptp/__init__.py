"""ptp: a veth pair to the host with host routes (reference: containernetworking/plugins ptp)."""
