"""Small checks on config text that several modules make (kept apart from
pycni.fwquote, so that a config model can use them without loading the
firewall quoting code)."""


def control_char(text: str) -> str | None:
    """The first control character of `text` (C0, DEL, C1), or None."""
    for c in text:
        o = ord(c)
        if o < 0x20 or 0x7f <= o < 0xa0:
            return c
    return None
