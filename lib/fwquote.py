"""Config-derived strings in iptables-restore and nft scripts: each one is
one token of one rule, never a second command.

Both tools read a script line by line, so a newline in any value would
start a command of its own (an ACCEPT at the top of filter INPUT, a
flush of another table). Every value a plugin writes into such a script
goes through one of these functions; what cannot be made one token is
refused with code 7 before anything is touched.

iptables-restore (xshared.c `add_param_to_argv`): tokens are separated by
space, tab and newline; a double-quoted token may contain spaces, and
inside quotes a backslash takes the next character literally. A NUL ends
the C string (the rest of the rule would vanish), one parameter holds at
most 1023 bytes. So: control characters are refused, anything but plain
characters is double-quoted with `\\` and `\"` escaped.

nft (scanner.l): a quoted string is `"[^"]*"` (no escapes), `;` and a
newline end a command, `#` starts a comment, `{` opens a block. Strings
are quoted after refusing `"` and control characters; values that must
be one bare word (addresses, ip:port) are checked against a small
alphabet; conditions are checked as described at `nft_conditions`.
"""

from .errors import CNIError, INVALID_NETWORK_CONFIG
from .text import control_char

IPT_PARAM_MAX = 1023          # xt_param_buf holds 1024 bytes with the NUL
# iptables-restore reads with fgets into a 10240-byte buffer: a longer line
# is read as two, and its tail parsed as a command of its own. A line with
# its newline must fit: at most 10238 bytes before the newline.
IPT_LINE_MAX = 10238
IPT_CONDITIONS_MAX = 8192     # leaves room for the rest of an entry rule
IPT_CHAIN_MAX = 28            # XT_EXTENSION_MAXNAMELEN - 1
NFT_COMMENT_MAX = 128         # NFTNL_UDATA_COMMENT_MAXLEN
_PLAIN = frozenset("-_./:,!+@%=[]")


def _refuse(what: str, problem: str, value) -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, f"invalid {what}: {problem}", repr(value))


def refuse_control(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise _refuse(what, "not a string", text)
    if control_char(text) is not None:
        raise _refuse(what, "contains a control character (newline, NUL, ...)", text)


# --- iptables-restore ------------------------------------------------------------

def ipt_token(arg: str, what: str = "iptables argument") -> str:
    """One argument as one iptables-restore token."""
    refuse_control(arg, what)
    if len(arg.encode()) > IPT_PARAM_MAX:
        raise _refuse(what, f"longer than {IPT_PARAM_MAX} bytes", arg)
    if arg and all(c.isascii() and (c.isalnum() or c in _PLAIN) for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ipt_line(argv: list[str], what: str = "iptables argument") -> str:
    """An argument list as one iptables-restore line (or line fragment)."""
    return " ".join(ipt_token(a, what) for a in argv)


def ipt_tokens(line: str) -> list[str]:
    """A line split into arguments exactly as iptables-restore does
    (add_param_to_argv): blanks separate, `"` opens and closes a quoted
    part, inside quotes a backslash takes the next character literally.
    iptables-save quotes with the same rules (`\\`, `\"`, `\'`)."""
    tokens: list[str] = []
    param: list[str] = []
    quote_open = escaped = False
    for c in line:
        if quote_open:
            if escaped:
                param.append(c)
                escaped = False
                continue
            if c == "\\":
                escaped = True
                continue
            if c != '"':
                param.append(c)
                continue
            quote_open = False          # the closing quote ends the token
        elif c == '"':
            quote_open = True
            continue
        elif c not in " \t\n":
            param.append(c)
            continue
        elif not param:
            continue
        tokens.append("".join(param))
        param = []
    if param:
        tokens.append("".join(param))
    return tokens


def ipt_script(lines: list[str]) -> str:
    """Lines as one iptables-restore script. Every line must stay one line
    for iptables-restore: no newline or NUL inside (also in lines echoed
    from iptables-save output), and short enough for its line buffer."""
    for line in lines:
        if "\n" in line or "\0" in line:
            raise _refuse("iptables rule", "contains a newline or NUL", line)
        if len(line.encode()) > IPT_LINE_MAX:
            raise _refuse("iptables rule", f"longer than {IPT_LINE_MAX} bytes, iptables-restore "
                          "would read it as more than one line", line[:200] + "...")
    return "\n".join(lines) + "\n"


def ipt_chain(name: str, what: str = "chain name") -> str:
    """A user chain name: one bare word iptables takes as a chain."""
    refuse_control(name, what)
    problem = ""
    if not name:
        problem = "empty"
    elif len(name.encode()) > IPT_CHAIN_MAX:
        problem = f"longer than {IPT_CHAIN_MAX} bytes"
    elif any(c.isspace() or c in "\"'\\" for c in name):
        problem = "contains whitespace, quotes or a backslash"
    elif name[0] in "-!":
        problem = 'starts with "-" or "!"'
    if problem:
        raise _refuse(what, problem, name)
    return name


# Options that make an iptables rule something other than "our rule with
# more matches": a command (-A, -I, -D, -F, -X, ...: iptables fails on a
# second one anyway), another table, a jump or goto (ours comes last), a
# modprobe program to run as root, help/version (iptables exits 0 having
# done nothing), waiting, counters, the other address family (iptables-
# restore skips such a rule silently).
_IPT_FORBIDDEN_SHORT = frozenset("ACDRILSMFZNXEPVhwWtjgc46")
# short options whose argument is the rest of the cluster ("-s10.0.0.1")
_IPT_ARG_SHORT = frozenset("ACDRILSMFZNXEPhopsdjiwWtmcg")
_IPT_FORBIDDEN_LONG = ("append", "check", "delete", "insert", "replace", "list",
                       "list-rules", "flush", "zero", "new-chain", "delete-chain",
                       "rename-chain", "policy", "modprobe", "version", "help", "wait",
                       "wait-interval", "table", "jump", "goto", "set-counters", "ipv4",
                       "ipv6")
# extension options that are also abbreviations of a forbidden one
_IPT_EXTENSION_LONG = frozenset({"pol"})      # -m policy --pol ipsec


def _ipt_match_name(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def ipt_condition_problem(token: str) -> str:
    """Why `token` may not be one of a rule's extra match arguments ("" if it may)."""
    if token == "":
        return "an empty argument"
    if token == "--":
        return '"--" ends the options'
    if token.startswith("--"):
        name, _, value = token[2:].partition("=")
        if name not in _IPT_EXTENSION_LONG and \
                any(full.startswith(name) for full in _IPT_FORBIDDEN_LONG):
            return f'the option "--{name}" is not a match'
        if name == "match" and value and not _ipt_match_name(value):
            return f'"{value}" is not a match extension name'
        return ""
    if token.startswith("-") and len(token) > 1:
        for i, c in enumerate(token[1:], 1):
            if c in _IPT_FORBIDDEN_SHORT:
                return f'the option "-{c}" is not a match'
            if c in _IPT_ARG_SHORT:
                rest = token[i + 1:]
                if c == "m" and rest and not _ipt_match_name(rest):
                    return f'"{rest}" is not a match extension name'
                break
    return ""


def ipt_conditions(conditions: list[str], what: str = "conditions") -> list[str]:
    """Validate iptables conditions: as in the reference, every element is
    one argument of the rule (it execs iptables with them); each must be a
    match argument, never a command, table, jump or tool option."""
    if not isinstance(conditions, list):
        raise _refuse(what, "not a list", conditions)
    previous = ""
    for i, token in enumerate(conditions):
        where = f"{what}[{i}]"
        ipt_token(token, where)
        problem = ipt_condition_problem(token)
        if not problem and previous in ("-m", "--match") and not _ipt_match_name(token):
            problem = f'"{token}" is not a match extension name'
        if problem:
            raise _refuse(where, problem, token)
        previous = token
    if len(ipt_line(conditions, what).encode()) > IPT_CONDITIONS_MAX:
        raise _refuse(what, f"longer than {IPT_CONDITIONS_MAX} bytes", "...")
    return conditions


# --- nft -----------------------------------------------------------------------------

_NFT_WORD = frozenset("0123456789abcdefABCDEF.:/[]-_")


def nft_string(text: str, what: str = "name") -> str:
    """A quoted nft string (interface names, set elements)."""
    refuse_control(text, what)
    if '"' in text:
        raise _refuse(what, "contains a double quote", text)
    return f'"{text}"'


def nft_comment(text: str, limit: int = NFT_COMMENT_MAX) -> str:
    """A quoted nft comment: quotes and control characters dropped, cut to
    `limit` bytes (comments only describe; rules are found by a hashed tag
    at their start)."""
    clean = "".join(c for c in text if c != '"' and control_char(c) is None)
    data = clean.encode()[:limit]
    return '"' + data.decode(errors="ignore") + '"'


def nft_word(text: str, what: str = "address") -> str:
    """An address, prefix or address:port written bare into a rule."""
    if not isinstance(text, str) or not text or any(c not in _NFT_WORD for c in text):
        raise _refuse(what, "not an address", text)
    return text


def nft_identifier(name: str, what: str = "nft name") -> str:
    """A table, chain or set name as nft's scanner reads an identifier."""
    ok = isinstance(name, str) and name[:1].isascii() and (name[:1].isalpha() or name[:1] == "_") \
        and all(c.isascii() and (c.isalnum() or c in "/-_.") for c in name)
    if not ok:
        raise _refuse(what, "not an nft identifier", name)
    return name


# Words a condition may not contain: verdicts and jumps (ours comes last),
# statements that change packets, marks, sets or the connection, and the
# words of other commands.
_NFT_FORBIDDEN_WORDS = frozenset("""
    accept drop reject queue continue return jump goto vmap
    set add update delete insert replace create destroy flush reset rename
    dnat snat masquerade redirect notrack dup fwd tproxy synproxy flow offload xt
    log comment
    table chain rule ruleset element flowtable hook policy
    list monitor describe export import include define redefine undefine
""".split())
_NFT_FORBIDDEN_CHARS = frozenset(";#$\\'`")
_NFT_OPEN, _NFT_CLOSE = "{([", "})]"


def nft_condition_problem(element: str) -> str:
    """Why `element` may not be (part of) the match expressions of a rule."""
    if control_char(element) is not None:
        return "contains a control character (newline, NUL, ...)"
    depth: list[str] = []
    quoted = False
    words, word = [], []
    for c in element:
        if quoted:
            if c == '"':
                quoted = False
            continue
        if c == '"':
            quoted = True
            continue
        if c in _NFT_FORBIDDEN_CHARS:
            return f'contains "{c}"'
        if c in _NFT_OPEN:
            depth.append(_NFT_CLOSE[_NFT_OPEN.index(c)])
        elif c in _NFT_CLOSE:
            if not depth or depth.pop() != c:
                return f'unbalanced "{c}"'
        if c.isascii() and (c.isalnum() or c in "_-"):
            word.append(c)
        elif word:
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    if quoted:
        return "unterminated string"
    if depth:
        return f'unbalanced "{_NFT_OPEN[_NFT_CLOSE.index(depth[-1])]}"'
    for w in words:
        if w.lower() in _NFT_FORBIDDEN_WORDS:
            return f'"{w}" is not a match'
    return ""


def nft_conditions(conditions: list[str], what: str = "conditions") -> str:
    """nft conditions as the reference writes them (its elements joined by
    spaces in front of the rule), each element checked to hold match
    expressions only: balanced brackets and quotes, no `;`, `#`, `$`,
    backslash or control character, no verdict, statement or command word."""
    if not isinstance(conditions, list):
        raise _refuse(what, "not a list", conditions)
    for i, element in enumerate(conditions):
        if not isinstance(element, str):
            raise _refuse(f"{what}[{i}]", "not a string", element)
    text = " ".join(conditions)
    problem = nft_condition_problem(text)
    if problem:
        raise _refuse(what, problem, text)
    return text
