"""Stream a (possibly gzipped) text file line by line, with byte-based progress."""

import gzip
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, NamedTuple

from model.importers.exceptions import UnreadableInput
from model.importers.import_report import ImportReport

ProgressHook = Callable[[int], None]
"""Called with the number of input bytes consumed since the previous call."""

_PROGRESS_EVERY_LINES: Final = 4096


class Line(NamedTuple):
    """One decoded line without its line break; ``terminated`` is False for a cut-off tail."""

    number: int
    text: str
    terminated: bool


def open_text_source(path: Path) -> tuple[io.BufferedIOBase, io.BufferedReader]:
    """(reader, raw file): the reader inflates ``.gz``; progress follows the raw file."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise UnreadableInput(f"cannot open {path}: {exc.strerror or exc}") from exc
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def read_lines(
    path: Path, report: ImportReport, progress: ProgressHook | None = None
) -> Iterator[Line]:
    """Yield every line of ``path``; lines that are not UTF-8 are reported and skipped."""
    reader, raw = open_text_source(path)
    reported = 0
    with raw, reader:
        try:
            for number, data in enumerate(reader, start=1):
                if progress is not None and number % _PROGRESS_EVERY_LINES == 0:
                    reported = _advance(progress, raw.tell(), reported)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    # A tail cut inside a multi-byte character is a truncation too.
                    reason = "bad_encoding" if data.endswith(b"\n") else "truncated_line"
                    report.bad(path.name, number, reason, str(exc), repr(data[:80]))
                    continue
                terminated = text.endswith("\n")
                yield Line(number, text.rstrip("\r\n"), terminated)
        except (OSError, EOFError) as exc:
            raise UnreadableInput(f"reading {path} failed: {exc}") from exc
        if progress is not None:
            _advance(progress, raw.tell(), reported)


def _advance(progress: ProgressHook, position: int, reported: int) -> int:
    if position > reported:
        progress(position - reported)
    return max(position, reported)
