"""Reading `iptables-save` output and writing `iptables-restore` input.

Pure functions shared by the iptables backends (bridge ipMasq, portmap,
firewall): they read the current table once, compute their change and
apply it as one restore batch.

A node's nat table can hold thousands of rules (500 portmap mappings are
~2,000), of which a call looks at a handful. `parse_saved` therefore only
sorts the lines by chain with plain string operations; a rule is split
into its arguments (`split`, the tokeniser iptables-restore uses) when it
is asked for: the rules of one chain (`chain_rules`), or the rules that
may jump to a target (`jumps_to`, which first tests the line's text for
the target's name, a test no jumping rule can fail). Splitting every rule
of a 2,000-rule table costs ~70 ms; sorting them ~1 ms.
"""

_TOKEN_BREAK = ' \t"\\'     # a chain name holding one of these is not a plain word
_NAME_SPECIAL = ' \t"\'\\'  # nor a target found by a plain text search


class Saved:
    """One table as `iptables-save -t TABLE` (or `iptables -S`) prints it.

    `chains`: the names declared (`:NAME ...` or `-N NAME`); `lines`: the
    raw `-A` lines of each chain, in order. `rules` (every rule as
    (chain, args, line)) is built on first use only. Rules are kept by
    chain, chains in order of their first rule: the order iptables-save
    and `iptables -S` print them in."""

    __slots__ = ("chains", "lines", "_args", "_rules")

    def __init__(self, chains: set[str] | None = None,
                 rules: list[tuple[str, list[str], str]] | None = None):
        self.chains = set() if chains is None else chains
        self.lines: dict[str, list[str]] = {}
        self._args: dict[str, list[list[str]]] = {}
        self._rules = None
        for chain, _args, line in rules or ():     # the args are split again from the line
            self.add_line(chain, line)

    def add_line(self, chain: str, line: str) -> None:
        self.lines.setdefault(chain, []).append(line)
        self._rules = None
        self._args.pop(chain, None)

    @property
    def rules(self) -> list[tuple[str, list[str], str]]:
        """Every rule as (chain, args, line), chain by chain."""
        if self._rules is None:
            self._rules = [(chain, args, line) for chain in self.lines
                           for args, line in zip(self.chain_rules(chain), self.lines[chain])]
        return self._rules

    def chain_rules(self, chain: str) -> list[list[str]]:
        """The arguments (after `-A CHAIN`) of `chain`'s rules."""
        args = self._args.get(chain)
        if args is None:
            args = self._args[chain] = [split(line)[2:] for line in self.lines.get(chain, ())]
        return args

    def jumps_to(self, target: str) -> list[tuple[str, list[str], str]]:
        """The rules (chain, args, line) whose jump or goto is `target`."""
        plain = bool(target) and not any(c in _NAME_SPECIAL for c in target)
        found = []
        for chain, lines in self.lines.items():
            start = 4 + len(chain)          # past "-A CHAIN "
            for line in lines:
                # `-j NAME` prints NAME as it is, so a rule jumping to
                # `target` holds its text after the chain name
                if plain and line.find(target, start) < 0:
                    continue
                args = split(line)[2:]
                if target_of(args) == target:
                    found.append((chain, args, line))
        return found

    def has(self, chain: str, rule: list[str], loose: bool = False) -> bool:
        """Is `rule` in `chain`? `loose`: ignoring comments."""
        if not loose:
            return rule in self.chain_rules(chain)
        bare = without_comment(rule)
        return any(without_comment(r) == bare for r in self.chain_rules(chain))


def lines_of(text: str) -> list[str]:
    """The lines iptables-restore would read back: split at "\n" only
    (str.splitlines also splits at \r, \x1c, \x85, ..., which a rule's
    comment may hold), so that a line we echo back as `-D ...` is
    exactly one rule."""
    return text.split("\n")


def chain_of(line: str) -> str:
    """The chain of a `-A CHAIN ...` line ("" if none), as iptables-restore
    reads it; plain string operations for the plain name iptables prints."""
    end = line.find(" ", 3)
    name = line[3:] if end < 0 else line[3:end]
    if not _plain(name):
        tokens = split(line)
        return tokens[1] if len(tokens) >= 2 else ""
    return name


def _plain(name: str) -> bool:
    """A chain name iptables-restore reads as it is written."""
    return bool(name) and '"' not in name and "\\" not in name and "\t" not in name


def parse_saved(text: str, saved: Saved | None = None) -> Saved:
    """`iptables-save` output, or `iptables -S` output (`-N NAME` lines),
    into `saved` (a new Saved by default). Linear, and no rule is split
    into arguments here (see the module's doc)."""
    saved = Saved() if saved is None else saved
    chains, lines = saved.chains, saved.lines
    last, group = None, None    # the chain of the previous line, its lines
    for line in lines_of(text):
        if line.startswith("-A "):
            end = line.find(" ", 3)
            name = line[3:] if end < 0 else line[3:end]
            if name == last:
                group.append(line)
                continue
            if not _plain(name):
                last = None
                name = chain_of(line)
                if name:
                    lines.setdefault(name, []).append(line)
                continue
            group = lines.get(name)
            if group is None:
                group = lines[name] = []
            group.append(line)
            last = name
        elif line.startswith(":") or line.startswith("-N "):
            name = line[1 if line[0] == ":" else 3:].split(None, 1)
            if name:
                chains.add(name[0])
    saved._args.clear()
    saved._rules = None
    return saved


def split(line: str) -> list[str]:
    """Tokens of a saved rule line, read as iptables-restore reads them
    (iptables-save writes `\'` inside quotes, which a shell would not undo)."""
    from .fwquote import ipt_tokens
    return ipt_tokens(line)


def target_of(args: list[str]) -> str:
    """The chain or target a rule jumps or goes to ("" if none)."""
    for a, b in zip(args, args[1:]):
        if a in ("-j", "--jump", "-g", "--goto"):
            return b
    return ""


def without_comment(rule: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(rule):
        if rule[i:i + 2] == ["-m", "comment"] or rule[i] == "--comment":
            i += 2
            continue
        out.append(rule[i])
        i += 1
    return out


def render(args: list[str]) -> str:
    """Rule arguments as an iptables-restore line fragment: each argument
    exactly one token (fwquote.ipt_line; control characters refused)."""
    from .fwquote import ipt_line
    return ipt_line(args)


def quote(arg: str) -> str:
    from .fwquote import ipt_token
    return ipt_token(arg)
