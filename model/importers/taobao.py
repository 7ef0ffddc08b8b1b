"""Taobao / Tianchi ``UserBehavior.csv``: no header, Unix seconds."""

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from model.importers.cells import epoch_seconds_to_ms, make_event, mapped_type, uint_text
from model.importers.csvrows import read_csv_events
from model.importers.import_report import ImportReport
from model.importers.lines import ProgressHook
from schemas.events import ShopEvent

EVENT_TYPES: Final = {
    "pv": "view",
    "cart": "add_to_cart",
    "fav": "wishlist",
    "buy": "purchase",
}


def parse_row(cells: list[str]) -> ShopEvent:
    """``user_id,item_id,category_id,behavior,timestamp``; epoch seconds are zone-free."""
    user_id, item_id, category_id, behavior, timestamp = cells
    return make_event(
        mapped_type(behavior, EVENT_TYPES),
        uint_text(user_id, "user_id"),
        uint_text(item_id, "item_id"),
        epoch_seconds_to_ms(timestamp),
        category=uint_text(category_id, "category_id"),
    )


def read_taobao(
    path: Path, report: ImportReport, progress: ProgressHook | None = None
) -> Iterator[ShopEvent]:
    """Events of ``UserBehavior.csv`` in file order (the release is sorted by user)."""
    return read_csv_events(path, report, parse_row, n_columns=5, progress=progress)
