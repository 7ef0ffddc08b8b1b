"""What an import did: rows read, events produced, bad rows by reason with examples."""

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.events import ShopEvent

BAD_ROW_REASONS: Final = (
    "wrong_column_count",
    "truncated_line",
    "bad_encoding",
    "invalid_json",
    "missing_field",
    "bad_number",
    "unknown_event_type",
    "negative_price",
    "bad_timestamp",
    "out_of_range",
    "wrong_type",
    "not_an_object",
    "oversized",
)
DEFAULT_MAX_EXAMPLES: Final = 20
_EXAMPLE_TEXT_CHARS: Final = 160

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadRowExample:
    """One rejected row: where it was (file, 1-based line) and why."""

    source: str
    line: int
    reason: str
    detail: str
    text: str


@dataclass
class ImportReport:
    """Counts gathered while streaming one import; filled in as rows go by."""

    fmt: str
    sources: list[str] = field(default_factory=list)
    max_examples: int = DEFAULT_MAX_EXAMPLES
    rows_read: int = 0
    header_lines: int = 0
    blank_lines: int = 0
    events: int = 0
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[BadRowExample] = field(default_factory=list)
    event_counts: Counter[str] = field(default_factory=Counter)
    first_ts: int | None = None
    last_ts: int | None = None
    out_of_order: int = 0
    notes: list[str] = field(default_factory=list)
    _users: set[str] = field(default_factory=set, repr=False)
    _sessions: set[str] = field(default_factory=set, repr=False)
    _prev_ts: int = field(default=-1, repr=False)

    @property
    def bad_rows(self) -> int:
        return sum(self.bad_by_reason.values())

    @property
    def users(self) -> int:
        return len(self._users)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    @property
    def span_ms(self) -> int:
        if self.first_ts is None or self.last_ts is None:
            return 0
        return self.last_ts - self.first_ts

    def bad(self, source: str, line: int, reason: str, detail: str, text: str = "") -> None:
        """Count one rejected row and keep it as an example while there is room."""
        self.bad_by_reason[reason] += 1
        if len(self.examples) < self.max_examples:
            clipped = text if len(text) <= _EXAMPLE_TEXT_CHARS else text[:_EXAMPLE_TEXT_CHARS] + "…"
            self.examples.append(BadRowExample(source, line, reason, detail, clipped))

    def count_event(self, event: ShopEvent) -> None:
        """Account for one produced event (users, sessions, span, order)."""
        self.events += 1
        self.event_counts[event.event_type] += 1
        self._users.add(event.user_id)
        if event.session_id is not None:
            self._sessions.add(event.session_id)
        ts = event.ts
        if ts < self._prev_ts:
            self.out_of_order += 1
        self._prev_ts = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for logs and machine-readable output)."""
        return {
            "format": self.fmt,
            "sources": list(self.sources),
            "rows_read": self.rows_read,
            "header_lines": self.header_lines,
            "blank_lines": self.blank_lines,
            "events": self.events,
            "bad_rows": self.bad_rows,
            "bad_by_reason": dict(self.bad_by_reason),
            "examples": [vars(e) for e in self.examples],
            "event_counts": dict(self.event_counts),
            "users": self.users,
            "sessions": self.sessions,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "out_of_order": self.out_of_order,
            "notes": list(self.notes),
        }

    def log_bad_rows(self) -> None:
        """Warn about rejected rows; used when no caller asked for the report itself."""
        if not self.bad_rows:
            return
        log.warning("%s: skipped %d bad rows %s", self.fmt, self.bad_rows, dict(self.bad_by_reason))
        for ex in self.examples:
            log.warning("  %s:%d %s: %s", ex.source, ex.line, ex.reason, ex.detail)
