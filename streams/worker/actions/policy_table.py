"""Typed reads of one TOML table's values, each wrong value recorded as a located problem."""

import math
from collections.abc import Collection
from typing import Any

from streams.worker.actions.policy_lines import KeyLines, Table


class ProblemList:
    """The problems found in one file, each ``<file>:<line>: <problem>``."""

    def __init__(self, name: str, lines: KeyLines) -> None:
        self.name = name
        self.lines = lines
        self.items: list[tuple[int, str]] = []

    def add(self, table: Table, key: str | None, message: str) -> None:
        self.items.append((self.lines.line_of(table, key), message))

    def text(self) -> str:
        """All problems, one per line, in file order."""
        ordered = sorted(self.items, key=lambda item: item[0])
        return "\n".join(f"{self.name}:{line}: {message}" for line, message in ordered)


class TableReader:
    """Reads values out of one table; a wrong or missing required value adds a problem and
    reads as None, so that every problem of the file is found in one pass."""

    def __init__(self, values: dict[str, Any], path: Table, problems: ProblemList) -> None:
        self.values = values
        self.path = path
        self.problems = problems
        self.where = "[" + ".".join(path) + "]"

    def problem(self, key: str | None, message: str) -> None:
        self.problems.add(self.path, key, message)

    def refuse_unknown(self, allowed: Collection[str]) -> None:
        for key in self.values:
            if key not in allowed:
                self.problem(key, f"unknown key {key!r} in {self.where}")

    def present(self, key: str) -> bool:
        return key in self.values

    def _missing(self, key: str, required: bool) -> bool:
        if key in self.values:
            return False
        if required:
            self.problem(None, f"{self.where} lacks the required key {key!r}")
        return True

    def text(self, key: str, *, required: bool = False) -> str | None:
        """A non-empty string."""
        if self._missing(key, required):
            return None
        value = self.values[key]
        if not isinstance(value, str) or not value:
            self.problem(key, f"{key} must be a non-empty string, not {value!r}")
            return None
        return value

    def choice(self, key: str, options: tuple[str, ...], *, required: bool = False) -> str | None:
        """One of ``options``."""
        value = self.text(key, required=required)
        if value is not None and value not in options:
            listed = ", ".join(repr(o) for o in options)
            self.problem(key, f"{key} = {value!r} is not one of {listed}")
            return None
        return value

    def number(
        self,
        key: str,
        *,
        low: float,
        high: float = math.inf,
        low_open: bool = False,
        high_open: bool = False,
        integer: bool = False,
        required: bool = False,
    ) -> float | None:
        """A finite number (an integer when ``integer``) within the bounds."""
        if self._missing(key, required):
            return None
        value = self.values[key]
        wrong_kind = isinstance(value, bool) or not isinstance(value, int | float)
        if not wrong_kind and integer:
            wrong_kind = not isinstance(value, int)
        if wrong_kind or not math.isfinite(value):
            kind = "an integer" if integer else "a number"
            self.problem(key, f"{key} must be {kind}, not {value!r}")
            return None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            lower = f"{low:g} {'<' if low_open else '<='} "
            upper = "" if math.isinf(high) else f" {'<' if high_open else '<='} {high:g}"
            self.problem(key, f"{key} = {value!r} is out of range: needs {lower}{key}{upper}")
            return None
        return float(value) if not integer else value

    def members(self, key: str, options: tuple[str, ...]) -> frozenset[str] | None:
        """A non-empty list of strings, each one of ``options``."""
        if key not in self.values:
            return None
        value = self.values[key]
        if not isinstance(value, list) or not value:
            self.problem(key, f"{key} must be a non-empty list of strings, not {value!r}")
            return None
        wrong = [v for v in value if not isinstance(v, str) or v not in options]
        if wrong:
            listed = ", ".join(options)
            self.problem(key, f"{key}: {wrong!r} not among {listed}")
            return None
        return frozenset(value)
