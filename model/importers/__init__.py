"""Turn public shop logs (REES46, Taobao, RetailRocket, OTTO, YOOCHOOSE) into contract events."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from model.importers.exceptions import BadRow, UnreadableInput
from model.importers.import_report import BadRowExample, ImportReport
from model.importers.jsonl import (
    ORACLE_KEY,
    read_events_jsonl,
    read_jsonl_with_extras,
    write_events_jsonl,
    write_jsonl,
)
from model.importers.lines import ProgressHook
from model.importers.otto import read_otto
from model.importers.rees46 import read_rees46
from model.importers.retailrocket import read_retailrocket
from model.importers.taobao import read_taobao
from model.importers.yoochoose import read_yoochoose, sibling_buys_path
from schemas.events import ShopEvent

SingleFileReader = Callable[[Path, ImportReport, ProgressHook | None], Iterator[ShopEvent]]
_SINGLE_FILE: Final[dict[str, SingleFileReader]] = {
    "rees46": read_rees46,
    "taobao": read_taobao,
    "retailrocket": read_retailrocket,
    "otto": read_otto,
}
FORMATS: Final = (*_SINGLE_FILE, "yoochoose")


def input_paths(fmt: str, source: Path, buys: Path | None = None) -> list[Path]:
    """Every file an import of ``source`` reads (for a yoochoose import, buys then clicks)."""
    if fmt != "yoochoose":
        return [source]
    buys = buys if buys is not None else sibling_buys_path(source)
    return [source] if buys is None else [buys, source]


def iter_events(
    fmt: str,
    source: Path,
    report: ImportReport,
    *,
    buys: Path | None = None,
    progress: ProgressHook | None = None,
) -> Iterator[ShopEvent]:
    """Stream the contract events of ``source``; bad rows and produced events go to ``report``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    paths = input_paths(fmt, source, buys)
    report.sources = [str(p) for p in paths]
    if fmt == "yoochoose":
        events = read_yoochoose(source, report, paths[0] if len(paths) == 2 else None, progress)
    else:
        events = _SINGLE_FILE[fmt](source, report, progress)
    for event in events:
        report.count_event(event)
        yield event


def import_events(
    fmt: str,
    source: Path,
    out: Path,
    *,
    buys: Path | None = None,
    progress: ProgressHook | None = None,
    max_examples: int = 20,
) -> ImportReport:
    """Convert ``source`` to contract JSON Lines at ``out`` and report what happened."""
    report = ImportReport(fmt, max_examples=max_examples)
    write_events_jsonl(iter_events(fmt, source, report, buys=buys, progress=progress), out)
    return report


__all__ = [
    "FORMATS",
    "ORACLE_KEY",
    "BadRow",
    "BadRowExample",
    "ImportReport",
    "ProgressHook",
    "UnreadableInput",
    "import_events",
    "input_paths",
    "iter_events",
    "read_events_jsonl",
    "read_jsonl_with_extras",
    "write_events_jsonl",
    "write_jsonl",
]
