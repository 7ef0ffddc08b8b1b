"""JSON Lines of contract events: the importers' output, the simulator's, the trainer's input."""

import gzip
import io
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from model.importers.csvrows import reject
from model.importers.exceptions import BadRow
from model.importers.import_report import ImportReport
from model.importers.lines import ProgressHook, read_lines
from schemas.events import ShopEvent, event_from_object
from schemas.exceptions import InvalidEvent

CONTRACT_KEYS: Final = frozenset(
    {
        "event_type",
        "user_id",
        "item_id",
        "ts",
        "event_id",
        "session_id",
        "category",
        "price",
        "quantity",
    }
)
ORACLE_KEY: Final = "oracle_purchase"  # simulated: P(purchase within H | hidden state)
CEILING_KEY: Final = "ceiling_purchase"  # simulated: P(purchase within H | visible events)
REFERENCE_KEYS: Final = (ORACLE_KEY, CEILING_KEY)


def read_jsonl_with_extras(
    path: Path,
    extras: Collection[str] | None = REFERENCE_KEYS,
    report: ImportReport | None = None,
    progress: ProgressHook | None = None,
) -> Iterator[tuple[ShopEvent, dict[str, Any]]]:
    """Validated events with the requested extra keys of their line (absent keys omitted).

    ``extras=None`` keeps every key outside the contract. Lines that break the contract
    are counted in ``report`` and skipped; without a report they are logged as warnings.
    """
    own_report = report is None
    tally = ImportReport("jsonl", [str(path)]) if report is None else report
    for line in read_lines(path, tally, progress):
        if not line.text.strip():
            tally.blank_lines += 1
            continue
        tally.rows_read += 1
        try:
            obj = orjson.loads(line.text)
            event = event_from_object(obj)
        except orjson.JSONDecodeError as exc:
            reject(tally, path, line, BadRow("invalid_json", str(exc)))
            continue
        except InvalidEvent as exc:
            reject(tally, path, line, BadRow(exc.reason, exc.detail))
            continue
        if extras is None:
            kept = {k: v for k, v in obj.items() if k not in CONTRACT_KEYS}
        else:
            kept = {k: obj[k] for k in extras if k in obj}
        tally.count_event(event)
        yield event, kept
    if own_report:
        tally.log_bad_rows()


def read_events_jsonl(
    path: Path, report: ImportReport | None = None, progress: ProgressHook | None = None
) -> Iterator[ShopEvent]:
    """Validated contract events of a JSON Lines file, bad lines counted and skipped."""
    for event, _ in read_jsonl_with_extras(path, (), report, progress):
        yield event


def open_output(path: Path) -> io.BufferedIOBase:
    """A binary writer for ``path``, gzip-compressed when it ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=5)
    return path.open("wb")


def write_jsonl(rows: Iterable[tuple[ShopEvent, Mapping[str, Any]]], path: Path) -> int:
    """Write one line per event: its contract JSON plus the extra keys given with it."""
    written = 0
    with open_output(path) as out:
        for event, extra in rows:
            obj = event.to_json()
            if extra:
                obj.update(extra)
            out.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    return written


def write_events_jsonl(events: Iterable[ShopEvent], path: Path) -> int:
    """Write contract events as JSON Lines; returns the number written."""
    return write_jsonl(((event, {}) for event in events), path)
