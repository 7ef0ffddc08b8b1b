"""The shared loop of the comma-separated formats: split, parse, count, skip bad rows."""

from collections.abc import Callable, Iterator
from pathlib import Path

from model.importers.exceptions import BadRow
from model.importers.import_report import ImportReport
from model.importers.lines import Line, ProgressHook, read_lines
from schemas.events import ShopEvent

RowParser = Callable[[list[str]], ShopEvent]


def read_csv_events(
    path: Path,
    report: ImportReport,
    parse: RowParser,
    *,
    n_columns: int,
    header: str | None = None,
    progress: ProgressHook | None = None,
) -> Iterator[ShopEvent]:
    """Parse every data row of a CSV file whose cells never contain commas or quotes.

    None of the public layouts quote their cells, so a plain split is exact; a quoted
    cell with a comma would show up as a wrong column count, never as a shifted row.
    """
    for line in read_lines(path, report, progress):
        if not line.text.strip():
            report.blank_lines += 1
            continue
        if line.number == 1 and header is not None and line.text.strip().lower() == header:
            report.header_lines += 1
            continue
        report.rows_read += 1
        cells = line.text.split(",")
        try:
            if len(cells) != n_columns:
                raise BadRow("wrong_column_count", f"{len(cells)} columns, expected {n_columns}")
            event = parse(cells)
        except BadRow as exc:
            reject(report, path, line, exc)
            continue
        yield event


def reject(report: ImportReport, path: Path, line: Line, exc: BadRow) -> None:
    """Record a bad row; an unterminated last line that fails to parse was cut off."""
    if line.terminated:
        report.bad(path.name, line.number, exc.reason, exc.detail, line.text)
    else:
        detail = f"last line has no line break (cut off): {exc.reason}: {exc.detail}"
        report.bad(path.name, line.number, "truncated_line", detail, line.text)
