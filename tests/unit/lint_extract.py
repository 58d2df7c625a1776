"""The network configurations written in our README files and tests, for
tests/unit/test_lint_corpus.py: JSON blocks of the Markdown files, and the
conflist dict literals of tests/integration (evaluated with the test
module's own constants; a parameter stands for a value of its name, e.g.
data_dir for a directory below PYCNI_STATE_DIRS)."""

import ast
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARAMETERS = {"data_dir": "/tmp/lint-corpus/networks", "version": "1.0.0",
              "cni_version": "1.0.0", "name": "corpus-net", "net": "corpus-net",
              "network": "corpus-net", "bridge": "corpusbr0", "master": "eth0",
              "ifname": "eth0"}


class Opaque(Exception):
    pass


def markdown_configs() -> list[tuple[str, dict]]:
    """(where, config) of every JSON object in a Markdown code block or in
    an `echo '...'` line that is a conflist (has `plugins`)."""
    out = []
    for md in sorted(ROOT.glob("**/*.md")):
        if any(part in (".venv", "build", "dist", "node_modules") or part.startswith(".")
               for part in md.relative_to(ROOT).parts):
            continue
        text = md.read_text(errors="replace")
        candidates = re.findall(r"```(?:json)?\n(.*?)```", text, re.S)
        candidates += re.findall(r"echo '(\{.*?\})'", text, re.S)
        candidates += re.findall(r"<<'?EOF'?\n(\{.*?\})\nEOF", text, re.S)
        for block in candidates:
            block = block.replace("\\\n", "")
            try:
                value = json.loads(block)
            except ValueError:
                continue
            if isinstance(value, dict) and "plugins" in value:
                out.append((f"{md.relative_to(ROOT)}", value))
    return out


def _module_constants(tree) -> dict:
    consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = _eval(node.value, consts)
            except Opaque:
                pass
    return consts


def _eval(node, names, value_of_key=False):
    """`value_of_key`: the node is the value of an object key, where a
    parameter's name may stand for a string of that name."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                continue        # **top: extra keys the test adds
            out[_eval(k, names)] = _eval(v, names, value_of_key=True)
        return out
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, names) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, names)
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if value_of_key and node.id in PARAMETERS:
            return PARAMETERS[node.id]
        raise Opaque(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "str" and len(node.args) == 1:
        return str(_eval(node.args[0], names, value_of_key))
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        for value in node.values:
            try:
                return _eval(value, names, value_of_key)
            except Opaque:
                continue
        raise Opaque("or")
    raise Opaque(type(node).__name__)


def test_configs(folder: str = "tests/integration") -> tuple[list, list]:
    """(where, conflist) of the conflist literals that evaluate, and the
    places of those that do not."""
    found, opaque = [], []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        consts = _module_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "plugins" for k in node.keys):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                try:
                    value = _eval(node, consts)
                except Opaque as exc:
                    opaque.append(f"{where} ({exc})")
                    continue
                if isinstance(value.get("plugins"), list) and value["plugins"]:
                    found.append((where, value))
    return found, opaque
