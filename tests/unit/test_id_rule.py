"""skel.is_valid_id is the regexp rule `[a-zA-Z0-9][a-zA-Z0-9_.\\-]*\\Z`
(container IDs and network names), checked without `re`."""

import random
import re

from pycni.skel import is_valid_id

ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z")

TRICKY = [
    "", "a", "A", "0", "_", ".", "-", "..", "a..", "a/b", "a b", "a\n", "\n", "a\nb",
    "a\r", "a\t", "a\x00", "a-b_c.d", "-a", "_a", ".a", "a" * 300,
    # Unicode letters and digits that str.isalnum (and \w) accept
    "é", "aé", "٣", "a٣", "１", "ａ", "ǅ", "ⅷ", "²", "a²", "ß", "İ", "K",
    "a\u200b", "a\u00a0", "\udc80", "a\udc80", "😀",
]


def test_tricky_strings_match_the_regexp():
    for text in TRICKY:
        assert is_valid_id(text) == bool(ID_RE.match(text)), repr(text)


def test_random_strings_match_the_regexp():
    rng = random.Random(1234)
    alphabet = ("abcXYZ019_.-/ \n\t\x00:;\\\"'" + "é٣１ａ²ß𝟘" + "\u0660\u00b2\u2160")
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
        assert is_valid_id(text) == bool(ID_RE.match(text)), repr(text)
    for code in range(0x20000):
        ch = chr(code)
        for text in (ch, "a" + ch, ch + "a"):
            assert is_valid_id(text) == bool(ID_RE.match(text)), repr(text)
