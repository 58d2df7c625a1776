"""What a node's CNI state says, and GC from the runtime's cache.

`pycni state` shows, per network, each address host-local handed out
(IP, container ID, interface) and whether its owner still looks alive:
libcni's result cache has the attachment and the network namespace that
the cached result names still exists. It adds the host-side objects that
can be attributed to an attachment: masquerading chains and rules
(ipMasq of bridge/ptp, by their hashed names and comments), portmap
chains (by their comments) and host veths (the interfaces of the cached
result that live outside the sandbox).

`pycni gc NETWORK` runs the network's GC as libcni does, with the
attachments whose owner looks alive as `cni.dev/valid-attachments`:
cached attachments whose netns is gone get a DEL, then (1.1.0 lists)
every plugin of the chain gets GC. It prints what went (the state before
and after, compared); `--dry-run` computes what would go and changes
nothing.

Modules: `model` (the records and every decision, pure), `hostobjs`
(parsers of firewall listings, pure, plus the thin collectors), `read`
(the store, the cache and netns liveness: read-only, nothing followed),
`runner` (the two commands).
"""
