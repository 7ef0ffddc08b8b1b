"""YOOCHOOSE (RecSys Challenge 2015): a clicks file and a buys file, merged per session."""

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from model.importers.cells import iso_to_ms, make_event, parse_int, parse_price, uint_text
from model.importers.csvrows import read_csv_events
from model.importers.exceptions import BadRow
from model.importers.import_report import ImportReport
from model.importers.lines import ProgressHook
from schemas.events import ShopEvent


def sibling_buys_path(clicks: Path) -> Path | None:
    """``yoochoose-buys.dat`` beside ``yoochoose-clicks.dat`` (any name with clicks→buys)."""
    if "clicks" not in clicks.name:
        return None
    candidate = clicks.with_name(clicks.name.replace("clicks", "buys"))
    return candidate if candidate.is_file() else None


def parse_click(cells: list[str]) -> ShopEvent:
    """``session,timestamp,item,category``; category 0 means unknown."""
    session, timestamp, item, category = cells
    session_id = uint_text(session, "session")
    return make_event(
        "view",
        session_id,
        uint_text(item, "item"),
        iso_to_ms(timestamp),
        session_id=session_id,
        category=None if category in ("", "0") else category,
    )


def parse_buy(cells: list[str]) -> ShopEvent:
    """``session,timestamp,item,price,quantity``; price 0 with quantity 0 means unknown."""
    session, timestamp, item, price_text, quantity_text = cells
    session_id = uint_text(session, "session")
    price = parse_price(price_text)
    quantity = parse_int(quantity_text, "quantity")
    if quantity < 0:
        raise BadRow("out_of_range", f"quantity {quantity} is negative")
    return make_event(
        "purchase",
        session_id,
        uint_text(item, "item"),
        iso_to_ms(timestamp),
        session_id=session_id,
        price=price or None,
        quantity=quantity or None,
    )


def read_yoochoose(
    clicks: Path,
    report: ImportReport,
    buys: Path | None = None,
    progress: ProgressHook | None = None,
) -> Iterator[ShopEvent]:
    """Each session's clicks and buys in time order; the session is also the user.

    The buys file (about 1/30 of the clicks) is held in memory and the clicks are streamed;
    the release groups clicks by session, and each group is merged with its buys by time.
    A clicks file that is not grouped still yields every row once, but a session's buys then
    join its first group. Buys of sessions without clicks come last.
    """
    pending: dict[str, list[ShopEvent]] = defaultdict(list)
    if buys is None:
        report.notes.append("no buys file given or found beside the clicks: no purchases")
    else:
        for buy in read_csv_events(buys, report, parse_buy, n_columns=5, progress=progress):
            pending[buy.user_id].append(buy)
    group: list[ShopEvent] = []
    for click in read_csv_events(clicks, report, parse_click, n_columns=4, progress=progress):
        if group and click.user_id != group[0].user_id:
            yield from _merged(group, pending.pop(group[0].user_id, []))
            group = []
        group.append(click)
    if group:
        yield from _merged(group, pending.pop(group[0].user_id, []))
    for session in sorted(pending, key=int):
        yield from sorted(pending[session], key=lambda event: event.ts)


def _merged(clicks: list[ShopEvent], buys: list[ShopEvent]) -> list[ShopEvent]:
    # A stable sort keeps a click before a buy stamped at the same moment.
    return sorted(clicks + buys, key=lambda event: event.ts)
