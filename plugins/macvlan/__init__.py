"""macvlan: the container gets its own MAC address on a host interface."""
