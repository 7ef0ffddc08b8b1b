"""OTTO recsys sessions: JSON Lines, one session with its events per line."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from model.importers.cells import checked_ts, make_event, mapped_type
from model.importers.csvrows import reject
from model.importers.exceptions import BadRow
from model.importers.import_report import ImportReport
from model.importers.lines import ProgressHook, read_lines
from schemas.events import ShopEvent

EVENT_TYPES: Final = {"clicks": "view", "carts": "add_to_cart", "orders": "purchase"}
# The official release stores epoch milliseconds; some re-packaged copies store seconds.
# Below this value a timestamp cannot be milliseconds of this century (it is 1973-03-03).
SECONDS_BELOW: Final = 100_000_000_000


def _uint(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRow("wrong_type", f"{name} {value!r} is not an integer")
    if value < 0:
        raise BadRow("out_of_range", f"{name} {value} is negative")
    return value


def _event(user_id: str, raw: Any) -> tuple[ShopEvent, bool]:
    """One entry of ``events``, and whether its time was in seconds."""
    if not isinstance(raw, dict):
        raise BadRow("not_an_object", f"event {raw!r} is not an object")
    missing = [key for key in ("aid", "ts", "type") if key not in raw]
    if missing:
        raise BadRow("missing_field", f"event lacks {', '.join(missing)}")
    ts = _uint(raw["ts"], "ts")
    in_seconds = ts < SECONDS_BELOW
    kind = raw["type"]
    if not isinstance(kind, str):
        raise BadRow("wrong_type", f"type {kind!r} is not a string")
    event = make_event(
        mapped_type(kind, EVENT_TYPES),
        user_id,
        str(_uint(raw["aid"], "aid")),
        checked_ts(ts * 1000 if in_seconds else ts, ts),
    )
    return event, in_seconds


def _session(text: str) -> tuple[str, list[Any]]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRow("invalid_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise BadRow("not_an_object", f"expected a session object, got {type(obj).__name__}")
    if "session" not in obj or "events" not in obj:
        raise BadRow("missing_field", "a session needs 'session' and 'events'")
    events = obj["events"]
    if not isinstance(events, list):
        raise BadRow("wrong_type", "'events' is not a list")
    return str(_uint(obj["session"], "session")), events


def read_otto(
    path: Path, report: ImportReport, progress: ProgressHook | None = None
) -> Iterator[ShopEvent]:
    """Events of every session in file order; the OTTO session becomes the user_id.

    An OTTO "session" spans up to four weeks of one browser's activity, so it is the
    shopper, not a visit: ``session_id`` stays empty and visits are split by time gaps.
    A bad entry inside a good line is reported on that line and only it is skipped.
    """
    seconds = 0
    for line in read_lines(path, report, progress):
        if not line.text.strip():
            report.blank_lines += 1
            continue
        report.rows_read += 1
        try:
            user_id, entries = _session(line.text)
        except BadRow as exc:
            reject(report, path, line, exc)
            continue
        for index, raw in enumerate(entries):
            try:
                event, in_seconds = _event(user_id, raw)
            except BadRow as exc:
                detail = f"events[{index}]: {exc.detail}"
                report.bad(path.name, line.number, exc.reason, detail, line.text)
                continue
            seconds += in_seconds
            yield event
    if seconds:
        report.notes.append(f"{seconds} OTTO timestamps were epoch seconds; converted to ms")
