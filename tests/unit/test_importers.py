"""Importers: every format on small inline files, bad rows, JSON Lines, the CLI, real samples."""

import gzip
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from model.importers import (
    ImportReport,
    UnreadableInput,
    import_events,
    iter_events,
    read_events_jsonl,
    read_jsonl_with_extras,
    write_events_jsonl,
    write_jsonl,
)
from schemas.events import ShopEvent, event_from_object
from streams.cli import main

REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run(fmt: str, path: Path, **kwargs: Path) -> tuple[list[ShopEvent], ImportReport]:
    report = ImportReport(fmt)
    events = list(iter_events(fmt, path, report, **kwargs))
    return events, report


def bad_lines(report: ImportReport) -> list[tuple[int, str]]:
    return [(ex.line, ex.reason) for ex in report.examples]


def assert_contract(events: list[ShopEvent]) -> None:
    for event in events:
        assert event_from_object(orjson.loads(orjson.dumps(event.to_json()))) == event


def test_rees46_rows_map_to_the_contract_and_bad_rows_are_counted(tmp_path: Path) -> None:
    rows = [
        REES46_HEADER,
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,s-1",
        "2019-10-01 00:00:05 UTC,cart,3900821,205,appliances.kettle,aqua,33.20,541312140,s-1",
        "2019-10-01 00:00:09 UTC,remove_from_cart,3900821,205,home.kettle,,33.2,541312140,s-1",
        "2019-10-01 00:01:00 UTC,purchase,3900821,205,appliances.kettle,,0,541312140,",
        "2019-10-01 00:01:00 UTC,view,1,2,,,1.0,3",  # line 6: 8 columns
        "2019-10-01 00:01:00 UTC,click,1,2,,,1.0,3,s",  # line 7: unknown type
        "2019-10-01 00:01:00 UTC,view,1,2,,,-4.5,3,s",  # line 8: negative price
        "yesterday,view,1,2,,,4.5,3,s",  # line 9: bad time
        "2019-10-01 00:01:00 UTC,view,1,2,,,4.5,abc,s",  # line 10: user id not a number
        "2019-10-01 00:01:00 UTC,view,1,2,,,cheap,3,s",  # line 11: price not a number
        "2019-10-01 00:02:00 UTC,view,17200506,2053013559792632471,furniture.sofa,,543.10,5190",
    ]
    path = write(tmp_path / "oct.csv", "\n".join(rows))  # the last line has no newline
    events, report = run("rees46", path)

    assert [e.event_type for e in events] == ["view", "add_to_cart", "remove_from_cart", "purchase"]
    first = events[0]
    assert (first.user_id, first.item_id, first.session_id) == ("541312140", "44600062", "s-1")
    assert first.ts == 1_569_888_000_000
    assert first.category == "2103807459595387724"  # no category_code: the numeric id
    assert events[1].category == "appliances.kettle"
    assert events[1].price == pytest.approx(33.2)
    assert events[3].session_id is None and events[3].price == 0.0
    assert bad_lines(report) == [
        (6, "wrong_column_count"),
        (7, "unknown_event_type"),
        (8, "negative_price"),
        (9, "bad_timestamp"),
        (10, "bad_number"),
        (11, "bad_number"),
        (12, "truncated_line"),
    ]
    assert report.rows_read == 11 and report.header_lines == 1
    assert report.events == 4 and report.bad_rows == 7
    assert report.users == 1 and report.sessions == 1
    assert report.span_ms == 60_000
    assert_contract(events)


def test_a_complete_last_line_without_newline_is_accepted(tmp_path: Path) -> None:
    row = "2019-10-01 00:00:00 UTC,view,1,2,,,1.5,3,s"
    events, report = run("rees46", write(tmp_path / "a.csv", f"{REES46_HEADER}\n{row}"))
    assert len(events) == 1 and report.bad_rows == 0


def test_taobao_maps_behaviours_and_seconds(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "1,2268318,2520377,pv,1511544070",
            "1,2333346,2520771,cart,1511561733",
            "1,2576651,149192,fav,1511572885",
            "1,3830808,4181361,buy,1511593493",
            "1,3830808,4181361,click,1511593493",  # line 5
            "1,3830808,4181361,pv,soon",  # line 6
            "1,3830808,4181361,pv",  # line 7
            "",  # a blank line is counted, not an error
            "2,46259,2520377,pv,1511544071",
        ]
    )
    events, report = run("taobao", write(tmp_path / "UserBehavior.csv", text + "\n"))
    assert [e.event_type for e in events] == [
        "view",
        "add_to_cart",
        "wishlist",
        "purchase",
        "view",
    ]
    assert events[0].ts == 1_511_544_070_000 and events[0].category == "2520377"
    assert bad_lines(report) == [
        (5, "unknown_event_type"),
        (6, "bad_number"),
        (7, "wrong_column_count"),
    ]
    assert report.blank_lines == 1 and report.users == 2
    assert_contract(events)


def test_retailrocket_maps_events_and_milliseconds(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "timestamp,visitorid,event,itemid,transactionid",
            "1433221332117,257597,view,355908,",
            "1433224214164,992329,addtocart,248676,",
            "1433221999827,111016,transaction,248676,4000",
            "1433221999827,111016,refund,248676,",  # line 5
            "1433221999827,,view,248676,",  # line 6
            "1433221999827,111016,view,248676,x9",  # line 7
        ]
    )
    events, report = run("retailrocket", write(tmp_path / "events.csv", text + "\n"))
    assert [e.event_type for e in events] == ["view", "add_to_cart", "purchase"]
    assert events[0].ts == 1_433_221_332_117 and events[0].user_id == "257597"
    assert bad_lines(report) == [
        (5, "unknown_event_type"),
        (6, "missing_field"),
        (7, "bad_number"),
    ]
    assert report.out_of_order == 1  # the transaction is stamped before the cart add
    assert_contract(events)


def test_otto_sessions_become_users_and_bad_entries_are_reported(tmp_path: Path) -> None:
    lines = [
        {"session": 0, "events": [{"aid": 11, "ts": 1659304800025, "type": "clicks"}]},
        {
            "session": 1,
            "events": [
                {"aid": 12, "ts": 1659304900000, "type": "carts"},
                {"aid": 12, "ts": 1659304901000, "type": "returns"},
                {"aid": 12, "ts": 1659304902000, "type": "orders"},
            ],
        },
        {"session": 2, "events": [{"aid": 13, "ts": 1659304800, "type": "clicks"}]},
    ]
    text = "\n".join(orjson.dumps(obj).decode() for obj in lines)
    text += '\n{"session": 3, "events": [\n[1, 2]\n{"session": -1, "events": []}\n'
    events, report = run("otto", write(tmp_path / "train.jsonl", text))
    assert [(e.user_id, e.event_type) for e in events] == [
        ("0", "view"),
        ("1", "add_to_cart"),
        ("1", "purchase"),
        ("2", "view"),
    ]
    assert events[0].ts == 1_659_304_800_025 and events[0].session_id is None
    assert events[3].ts == 1_659_304_800_000  # epoch seconds, converted
    assert any("seconds" in note for note in report.notes)
    assert bad_lines(report) == [
        (2, "unknown_event_type"),
        (4, "invalid_json"),
        (5, "not_an_object"),
        (6, "out_of_range"),
    ]
    assert "events[1]" in report.examples[0].detail
    assert report.rows_read == 6
    assert_contract(events)


def yoochoose_files(tmp_path: Path) -> tuple[Path, Path]:
    clicks = "\n".join(
        [
            "1,2014-04-07T10:51:09.277Z,214536502,0",
            "1,2014-04-07T10:57:09.868Z,214536500,S",
            "1,2014-04-07T10:58:00.000Z,214536500,1",
            "2,2014-04-07T13:56:37.614Z,214662742,0",
            "2,2014-04-07T13:57:19.373Z,214825110,0,9",  # line 5
        ]
    )
    buys = "\n".join(
        [
            "1,2014-04-07T10:57:30.000Z,214536500,1046,2",
            "9,2014-04-06T18:44:58.314Z,214537888,0,0",
            "1,2014-04-07T11:00:00.000Z,214536502,-3,1",  # line 3
        ]
    )
    return (
        write(tmp_path / "yoochoose-clicks.dat", clicks + "\n"),
        write(tmp_path / "yoochoose-buys.dat", buys + "\n"),
    )


def test_yoochoose_merges_buys_into_their_session_by_time(tmp_path: Path) -> None:
    clicks, _ = yoochoose_files(tmp_path)
    events, report = run("yoochoose", clicks)  # the buys file is found beside the clicks
    assert [(e.user_id, e.event_type, e.ts % 100_000) for e in events] == [
        ("1", "view", 69277),
        ("1", "view", 29868),
        ("1", "purchase", 50000),
        ("1", "view", 80000),
        ("2", "view", 97614),
        ("9", "purchase", 98314),  # a session with buys only comes last
    ]
    assert events[0].category is None and events[1].category == "S"
    assert events[0].ts == 1_396_867_869_277  # exact milliseconds
    assert (events[2].price, events[2].quantity) == (1046.0, 2)
    assert (events[5].price, events[5].quantity) == (None, None)  # 0 means unknown
    where = [(ex.source, ex.line, ex.reason) for ex in report.examples]
    assert where == [
        ("yoochoose-buys.dat", 3, "negative_price"),
        ("yoochoose-clicks.dat", 5, "wrong_column_count"),
    ]
    assert len(report.sources) == 2
    assert_contract(events)


def test_yoochoose_with_an_explicit_buys_path_or_none(tmp_path: Path) -> None:
    clicks, buys = yoochoose_files(tmp_path)
    moved = buys.rename(tmp_path / "other-buys.csv")
    events, _ = run("yoochoose", clicks, buys=moved)
    assert sum(e.event_type == "purchase" for e in events) == 2
    events, report = run("yoochoose", clicks)  # the sibling is gone now
    assert {e.event_type for e in events} == {"view"}
    assert any("no buys file" in note for note in report.notes)


def test_gzip_input_bad_encoding_and_example_limit(tmp_path: Path) -> None:
    rows = [f"1,{i},5,pv,1511544070" for i in range(5)] + ["1,x,5,pv,1"] * 25
    data = ("\n".join(rows) + "\n").encode() + b"1,\xff\xfe,5,pv,1\n"
    path = tmp_path / "UserBehavior.csv.gz"
    path.write_bytes(gzip.compress(data))
    report = ImportReport("taobao", max_examples=20)
    events = list(iter_events("taobao", path, report))
    assert len(events) == 5
    assert report.bad_by_reason == {"bad_number": 25, "bad_encoding": 1}
    assert len(report.examples) == 20 and report.examples[0].line == 6


def test_progress_hook_sees_every_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", "".join(f"1,{i},5,pv,1511544070\n" for i in range(10_000)))
    seen: list[int] = []
    run_report = ImportReport("taobao")
    list(iter_events("taobao", path, run_report, progress=seen.append))
    assert sum(seen) == path.stat().st_size and len(seen) > 1


def test_unreadable_input_raises(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInput):
        import_events("rees46", tmp_path / "missing.csv", tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="unknown format"):
        list(iter_events("csv", tmp_path / "x", ImportReport("csv")))


def test_jsonl_round_trip_with_extras_and_bad_lines(tmp_path: Path) -> None:
    events = [
        ShopEvent("view", "u1", "i1", 1_700_000_001_000, event_id="e1", price=2.5),
        ShopEvent("purchase", "u1", "i1", 1_700_000_002_000, quantity=3, session_id="s"),
    ]
    path = tmp_path / "events.jsonl"
    assert (
        write_jsonl([(events[0], {"oracle_purchase": 0.25, "note": "x"}), (events[1], {})], path)
        == 2
    )
    with path.open("ab") as out:
        out.write(b'{"event_type": "view"}\n')  # line 3: no user_id
        out.write(b"not json\n")  # line 4
        out.write(b'{"event_type":"buy","user_id":"u","item_id":"i","ts":1}\n')  # line 5
    report = ImportReport("jsonl")
    rows = list(read_jsonl_with_extras(path, report=report))
    assert [event for event, _ in rows] == events
    assert [extra for _, extra in rows] == [{"oracle_purchase": 0.25}, {}]
    assert bad_lines(report) == [
        (3, "missing_field"),
        (4, "invalid_json"),
        (5, "unknown_event_type"),
    ]
    everything = [extra for _, extra in read_jsonl_with_extras(path, extras=None)]
    assert everything == [{"oracle_purchase": 0.25, "note": "x"}, {}]
    assert list(read_events_jsonl(path)) == events


def test_import_writes_json_lines(tmp_path: Path) -> None:
    src = write(
        tmp_path / "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n1433221332117,2,view,3,\n1,2,view,3,\n",
    )
    out = tmp_path / "out" / "events.jsonl.gz"
    report = import_events("retailrocket", src, out)
    assert report.events == 1
    assert bad_lines(report) == [(3, "bad_timestamp")]  # 1 ms after 1970: not a shop event
    assert list(read_events_jsonl(out)) == [ShopEvent("view", "2", "3", 1433221332117)]
    assert write_events_jsonl([], tmp_path / "empty.jsonl") == 0


def test_cli_import_reports_bad_rows_and_exits_zero(tmp_path: Path) -> None:
    src = write(tmp_path / "ub.csv", "1,2,3,pv,1511544070\n1,2,3,zz,1511544070\n")
    out = tmp_path / "ub.jsonl"
    result = CliRunner().invoke(
        main, ["import", "--format", "taobao", str(src), str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "unknown_event_type" in result.output and "ub.csv:2" in result.output
    assert len(out.read_bytes().splitlines()) == 1


def test_cli_import_fails_on_unreadable_input(tmp_path: Path) -> None:
    args = ["import", "--format", "otto", str(tmp_path / "nope.jsonl"), str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code != 0 and "cannot open" in result.output
    result = CliRunner().invoke(main, [*args, "--buys", str(tmp_path / "b")])
    assert result.exit_code == 2  # --buys is only for yoochoose


@pytest.mark.realdata
def test_rees46_real_sample(rees46_sample: Path, tmp_path: Path) -> None:
    report = import_events("rees46", rees46_sample, tmp_path / "rees46.jsonl", progress=None)
    assert report.events == 17_434
    assert report.bad_rows == 1 and bad_lines(report) == [(17_436, "truncated_line")]
    assert report.event_counts == {"view": 17_055, "add_to_cart": 165, "purchase": 214}
    # The data README counts 4,505 users: one more, the cut-off id of the truncated line.
    assert report.users == 4_504 and report.sessions == 5_066
    assert report.first_ts == 1_569_888_000_000  # 2019-10-01 00:00 UTC
    assert report.span_ms == (2 * 60 + 50) * 60_000
    assert report.out_of_order == 0


@pytest.mark.realdata
def test_otto_real_sample(otto_sample: Path) -> None:
    events, report = run("otto", otto_sample)
    assert len(events) == 862 and report.bad_rows == 0
    assert report.users == 20 and report.rows_read == 20
    assert report.event_counts == {"view": 800, "add_to_cart": 52, "purchase": 10}
    assert not report.notes  # the official release stores milliseconds
    assert report.first_ts == 1_659_304_800_025
    assert_contract(events[:50])
