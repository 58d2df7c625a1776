"""Reading `iptables-save` output and writing `iptables-restore` input.

Pure functions shared by the iptables backends (bridge ipMasq, portmap,
firewall): they read the current table once, compute their change and
apply it as one restore batch.
"""

from .model import dataclass, field


@dataclass
class Saved:
    """One table as `iptables-save -t TABLE` prints it."""
    chains: set[str] = field(default_factory=set)
    rules: list[tuple[str, list[str], str]] = field(default_factory=list)  # chain, args, line

    def chain_rules(self, chain: str) -> list[list[str]]:
        return [args for c, args, _ in self.rules if c == chain]

    def jumps_to(self, target: str) -> list[tuple[str, list[str], str]]:
        return [r for r in self.rules if target_of(r[1]) == target]

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


def parse_saved(text: str) -> Saved:
    saved = Saved()
    for line in lines_of(text):
        if line.startswith(":"):
            saved.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            tokens = split(line)
            if len(tokens) >= 2:
                saved.rules.append((tokens[1], tokens[2:], line))
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
