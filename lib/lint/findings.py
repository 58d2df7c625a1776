"""What lint reports: one Finding per problem, with where it is."""

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    file: str
    pointer: str        # RFC 6901 JSON pointer into the file's document ("" = all of it)
    severity: str       # ERROR (ADD or loading fails) or WARNING (accepted, but not as meant)
    message: str

    def to_dict(self) -> dict:
        return {"file": self.file, "pointer": self.pointer,
                "severity": self.severity, "message": self.message}


def pointer(*parts) -> str:
    """The JSON pointer of the path `parts` (keys and list indexes)."""
    out = []
    for part in parts:
        out.append("/" + str(part).replace("~", "~0").replace("/", "~1"))
    return "".join(out)


def join(base: str, *parts) -> str:
    return base + pointer(*parts)
