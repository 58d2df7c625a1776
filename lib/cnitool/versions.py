"""Spec version comparison with libcni's leniency: "" means 0.1.0 and
"1.0" is a valid version (missing parts are zero)."""

CURRENT = "1.1.0"


def key(version: str) -> tuple[int, int, int]:
    if version == "":
        return (0, 1, 0)
    parts = version.split(".")
    if len(parts) >= 4:
        raise ValueError(f'invalid version "{version}": too many parts')
    numbers = []
    for label, part in zip(("major", "minor", "micro"), parts):
        if not part.isdigit():
            raise ValueError(f'failed to convert {label} version part "{part}"')
        numbers.append(int(part))
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


def greater_than(version: str, other: str) -> bool:
    return key(version) > key(other)


def at_least(version: str, other: str) -> bool:
    return key(version) >= key(other)
