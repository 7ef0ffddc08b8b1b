"""The line of each table header and key in a TOML file's raw text, for error messages.

tomllib returns values without positions, so a wrong value is located by scanning the text:
``[table.name]`` headers and ``key =`` lines. Keys written as dotted keys or inside inline
tables are not found; their problems point at the enclosing table's header (or line 1).
"""

import re
from dataclasses import dataclass, field

_PART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
_HEADER = re.compile(rf"^\s*\[\s*({_PART}(?:\s*\.\s*{_PART})*)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_PART})\s*=")
_PARTS = re.compile(_PART)

Table = tuple[str, ...]


def _unquote(part: str) -> str:
    if part[:1] in {'"', "'"}:
        return part[1:-1]
    return part


@dataclass(frozen=True)
class KeyLines:
    """1-based line numbers of table headers and of the keys directly inside each table."""

    headers: dict[Table, int] = field(default_factory=dict)
    keys: dict[tuple[Table, str], int] = field(default_factory=dict)

    def line_of(self, table: Table, key: str | None = None) -> int:
        """The key's line; else the table's header line; else its nearest parent's; else 1."""
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        for end in range(len(table), 0, -1):
            if table[:end] in self.headers:
                return self.headers[table[:end]]
        return 1


def key_lines(text: str) -> KeyLines:
    """Scan ``text`` for headers and ``key =`` lines (the first occurrence of each counts)."""
    found = KeyLines()
    table: Table = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = tuple(_unquote(p) for p in _PARTS.findall(header.group(1)))
            found.headers.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            found.keys.setdefault((table, _unquote(key.group(1))), number)
    return found
