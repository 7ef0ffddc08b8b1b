"""REES46 / Open CDP "eCommerce behavior data from multi category store" CSV files."""

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from model.importers.cells import iso_to_ms, make_event, mapped_type, parse_price, uint_text
from model.importers.csvrows import read_csv_events
from model.importers.import_report import ImportReport
from model.importers.lines import ProgressHook
from schemas.events import ShopEvent

HEADER: Final = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
EVENT_TYPES: Final = {
    "view": "view",
    "cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "purchase": "purchase",
}


def parse_row(cells: list[str]) -> ShopEvent:
    """One row; category is the readable code when present, else the numeric category id."""
    event_time, event_type, product_id, category_id, category_code, _brand = cells[:6]
    price, user_id, user_session = cells[6:]
    return make_event(
        mapped_type(event_type, EVENT_TYPES),
        uint_text(user_id, "user_id"),
        uint_text(product_id, "product_id"),
        iso_to_ms(event_time),
        session_id=user_session or None,
        category=category_code or category_id or None,
        price=parse_price(price),
    )


def read_rees46(
    path: Path, report: ImportReport, progress: ProgressHook | None = None
) -> Iterator[ShopEvent]:
    """Events of one REES46 monthly file (header optional), in file order."""
    return read_csv_events(path, report, parse_row, n_columns=9, header=HEADER, progress=progress)
