"""RetailRocket ``events.csv``: header, Unix milliseconds, no prices or categories."""

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from model.importers.cells import epoch_ms, make_event, mapped_type, uint_text
from model.importers.csvrows import read_csv_events
from model.importers.import_report import ImportReport
from model.importers.lines import ProgressHook
from schemas.events import ShopEvent

HEADER: Final = "timestamp,visitorid,event,itemid,transactionid"
EVENT_TYPES: Final = {
    "view": "view",
    "addtocart": "add_to_cart",
    "transaction": "purchase",
}


def parse_row(cells: list[str]) -> ShopEvent:
    """``timestamp,visitorid,event,itemid,transactionid``; the transaction id is not kept."""
    timestamp, visitor_id, event, item_id, transaction_id = cells
    if transaction_id:
        uint_text(transaction_id, "transactionid")
    return make_event(
        mapped_type(event, EVENT_TYPES),
        uint_text(visitor_id, "visitorid"),
        uint_text(item_id, "itemid"),
        epoch_ms(timestamp),
    )


def read_retailrocket(
    path: Path, report: ImportReport, progress: ProgressHook | None = None
) -> Iterator[ShopEvent]:
    """Events of ``events.csv`` in file order."""
    return read_csv_events(path, report, parse_row, n_columns=5, header=HEADER, progress=progress)
