"""`pycni lint`: check CNI network configurations the way a runtime loads them.

Operator tooling, never imported by a plugin. The pieces:

- `findings`: the Finding record (file, JSON pointer, severity, message);
- `load`: libcni's file selection, order and parsing (pure over bytes,
  plus a thin directory walk), every problem a finding;
- `refdata`: what lint knows about plugins as data (the reference's key
  sets of the plugins pycni does not ship, capabilities, chaining);
- `plugins`: every plugin object through its plugin's own config model
  (pycni's loaders: what ADD would refuse) and the keys it ignores;
- `checks`: the checks over one network and across the node's networks;
- `probe`: the side effects: CNI_PATH lookups, VERSION, dataDir modes;
- `main`: the command line (`pycni lint [--json] [PATH ...]`).
"""
