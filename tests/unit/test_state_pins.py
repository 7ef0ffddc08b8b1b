"""Today's features and state bytes, pinned: existing models and stored states depend on them.

The values were computed by the encoder as it was before it moved into one module (encoder
version 3, state format 4). A change here is a change to what every trained model sees, or
to what every stored state means: it needs a new encoder version or state format, not a new
pin.
"""

import hashlib

import numpy as np

from model.serving.user_state import (
    FEATURE_NAMES,
    EncoderState,
    UserState,
    decode_state,
    encode_events,
    encode_records,
    encode_state,
    feature_spec_hash,
    model_tag,
    records_to_sequence,
    sequence_records,
    source_id,
)
from model.serving.user_state import record_from_event as to_record
from schemas.events import ShopEvent

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
N_FEATURES_AT_PIN = 29
KINDS = ("view", "view", "add_to_cart", "view", "wishlist", "add_to_cart", "remove_from_cart")
CATEGORIES = (None, "shoes", "books", "a.b", "a.c", "d", "e", "f", "g", "h", "i", "j", "")
GAPS_S = (0, 4, 17, 65, 300, 1_799, 3, 9, 1_801, 40, 7_200, 2, 90_000, 1)  # ties, gaps, a day


def shopper_events() -> list[ShopEvent]:
    """One shopper over a few days, chosen to reach every branch of the encoder.

    Every event type (a purchase every 13th event), carts past their 32-item cap, sessions
    split by id and by gap, a session through more categories than are counted, events with
    and without a category, repeat views, missing prices and quantities. Plain arithmetic,
    so the events never depend on a library.
    """
    events = []
    ts = T0
    for i in range(150):
        busy = 120 <= i < 140  # one long session through many categories
        ts += (5 if busy else GAPS_S[(i * 3) % len(GAPS_S)]) * 1000 + i
        kind = "purchase" if i % 13 == 12 else KINDS[(i * 5) % len(KINDS)]
        item = str((i * 7) % 41 if i < 100 else i % 5)
        if 60 <= i < 100 and i % 13 != 12:
            kind, item = "add_to_cart", f"bulk{i}"  # more distinct items than a cart keeps
        events.append(
            ShopEvent(
                event_type=kind,
                user_id="u",
                item_id=item,
                ts=ts,
                session_id=None if i % 17 == 3 else f"s{i // 20}",
                category=CATEGORIES[(i if busy else i // 3 * 4 + i // 7) % len(CATEGORIES)],
                price=None if i % 6 == 5 else round((i * 37) % 500 + 0.99, 2),
                quantity=(None, 1, 3, 2)[i % 4],
            )
        )
    return events


def small_state(applied: bool) -> UserState:
    """A state after the first ten events, with a six-event window and made-up network state."""
    records = [to_record(e) for e in shopper_events()[:10]]
    _, encoder, _ = encode_records(records)
    return UserState(
        model_tag=model_tag("pinned-model"),
        updated_ms=T0 + 123,
        encoder=encoder,
        window=(np.arange(N_FEATURES_AT_PIN, dtype=np.float32) / 8).reshape(1, -1),
        h=np.array([0.5, -0.25], np.float32),
        c=np.array([1.0, 2.0], np.float32),
        sequence=records_to_sequence(records[4:]),
        applied={source_id("clicks", 3): 41, source_id("carts", 0): 7} if applied else {},
    )


# sha256 (first 16 hex digits) of each feature's float32 column over shopper_events().
COLUMN_DIGESTS = {
    "is_view": "dbf1fbf8f7deab22",
    "is_add_to_cart": "8859a1feeb5e4da4",
    "is_remove_from_cart": "ff8e91797c7b9567",
    "is_wishlist": "dce8731d20e26aa4",
    "is_purchase": "e2595cae1a0c95cf",
    "log_price": "8890f1c302f02681",
    "log_quantity": "6a2e14604c03a5e0",
    "log_seconds_since_previous": "20cdde094142f583",
    "is_first_event": "127cc74f426c84ea",
    "is_new_session": "57cced747fbed135",
    "log_events_in_session": "94f0045377a183a1",
    "log_session_seconds": "1c2ca9e830e5096e",
    "log_cart_items": "313fcfebf4dbed20",
    "log_cart_value": "c575e7640df72e1f",
    "item_seen_recently": "f5d93c012b844934",
    "item_in_cart": "1331fc1b77f598c1",
    "hour_sin": "b896b24b9141e66f",
    "hour_cos": "19ea6f410ec62eb4",
    "log_events_total": "8f87019dbf067ce3",
    "same_category_as_previous": "344508f789d19e7f",
    "category_recent_share": "34d7112c5c60111f",
    "log_session_category_events": "e1ce163590dd736c",
    "session_dominant_category_share": "61cf03058b7c36c8",
    "recent_dominant_category_share": "5ec8067637fd4360",
    "log_seconds_since_first_event": "24cc12f2d686294c",
    "log_sessions_total": "066fc8122bf4e07f",
    "log_sessions_per_day": "9b9b7bbecf376f3b",
    "item_in_recent_views": "313a43c016150ead",
    "log_session_repeat_views": "770476359b05fd13",
}
# One row in full, to show what the digests stand for: the eighth event, a view mid-session.
ROW_7 = {
    "is_view": 1.0,
    "is_add_to_cart": 0.0,
    "is_remove_from_cart": 0.0,
    "is_wishlist": 0.0,
    "is_purchase": 0.0,
    "log_price": 0.9274137020111084,
    "log_quantity": 1.0986123085021973,
    "log_seconds_since_previous": 0.19194039702415466,
    "is_first_event": 0.0,
    "is_new_session": 0.0,
    "log_events_in_session": 0.4023594856262207,
    "log_session_seconds": 0.5749450325965881,
    "log_cart_items": 0.36620408296585083,
    "log_cart_value": 0.820298433303833,
    "item_seen_recently": 0.0,
    "item_in_cart": 0.0,
    "hour_sin": -0.17214401066303253,
    "hour_cos": 0.9850717782974243,
    "log_events_total": 0.36620408296585083,
    "same_category_as_previous": 0.0,
    "category_recent_share": 0.0,
    "log_session_category_events": 0.1732867956161499,
    "session_dominant_category_share": 0.5,
    "recent_dominant_category_share": 0.375,
    "log_seconds_since_first_event": 0.8151602149009705,
    "log_sessions_total": 0.3465735912322998,
    "log_sessions_per_day": 0.9025523662567139,
    "item_in_recent_views": 0.0,
    "log_session_repeat_views": 0.0,
}
# small_state(applied=True) as format 4 writes it, and small_state(applied=False) as
# format 3 wrote it (no applied offsets).
FORMAT_4 = bytes.fromhex(
    "04d6d4fe627b68e5cf8b0100000600030a080105010002000a0000001d00b7d58b010000660812632cfcb6d5"
    "8b010000020000000068e5cf8b010000040000000000000002824abf6a01000000c3f51742b7efdc83030000"
    "0071fd5e436ed137d101000000b87e944321dfdbf4824abf6af8e130a6b44677fd10feab84ecb301e3b7efdc"
    "83135700fa6ed137d10e177e6400000000cb41e869cb41e869cb41e869761bd401e7066b91e7066b91000000"
    "00e7066b910100000021dfdbf4f8e130a6b44677fd135700fa0e177e64cb14d0a6290000000000000041e912"
    "d60700000000000000000000000000003e0000803e0000c03e0000003f0000203f0000403f0000603f000080"
    "3f0000903f0000a03f0000b03f0000c03f0000d03f0000e03f0000f03f000000400000084000001040000018"
    "400000204000002840000030400000384000004040000048400000504000005840000060400000003f000080"
    "be0000803f000000406a5844d58b0100000210feab846608126371fd14430100cb41e8690f6844d58b010000"
    "03ecb301e366081263000000000100cb41e869f5fb48d58b01000001b7efdc836608126371fd5e430300761b"
    "d401241f49d58b01000000135700fa66081263b8fe81430200e7066b912cfcb6d58b010000016ed137d16608"
    "1263b87e94430100e7066b911d00b7d58b010000000e177e6466081263b8fea643010000000000"
)
FORMAT_3 = bytes.fromhex(
    "03d6d4fe627b68e5cf8b0100000600030a080105010002000a0000001d00b7d58b010000660812632cfcb6d5"
    "8b010000020000000068e5cf8b0100000400000000000000824abf6a01000000c3f51742b7efdc8303000000"
    "71fd5e436ed137d101000000b87e944321dfdbf4824abf6af8e130a6b44677fd10feab84ecb301e3b7efdc83"
    "135700fa6ed137d10e177e6400000000cb41e869cb41e869cb41e869761bd401e7066b91e7066b9100000000"
    "e7066b910100000021dfdbf4f8e130a6b44677fd135700fa0e177e64000000000000003e0000803e0000c03e"
    "0000003f0000203f0000403f0000603f0000803f0000903f0000a03f0000b03f0000c03f0000d03f0000e03f"
    "0000f03f00000040000008400000104000001840000020400000284000003040000038400000404000004840"
    "0000504000005840000060400000003f000080be0000803f000000406a5844d58b0100000210feab84660812"
    "6371fd14430100cb41e8690f6844d58b01000003ecb301e366081263000000000100cb41e869f5fb48d58b01"
    "000001b7efdc836608126371fd5e430300761bd401241f49d58b01000000135700fa66081263b8fe81430200"
    "e7066b912cfcb6d58b010000016ed137d166081263b87e94430100e7066b911d00b7d58b010000000e177e64"
    "66081263b8fea643010000000000"
)


def test_spec_hash_is_the_one_artifacts_record() -> None:
    assert feature_spec_hash() == "739e2a61f1738664"


def test_features_are_the_pinned_ones() -> None:
    features, _ = encode_events(shopper_events())
    assert features.shape == (150, N_FEATURES_AT_PIN)
    changed = [
        name
        for name, digest in COLUMN_DIGESTS.items()
        if hashlib.sha256(features[:, FEATURE_NAMES.index(name)].tobytes()).hexdigest()[:16]
        != digest
    ]
    assert changed == []
    row = {name: float(features[7, FEATURE_NAMES.index(name)]) for name in ROW_7}
    assert row == ROW_7


def encoder_fields(state: UserState) -> dict[str, object]:
    return {name: getattr(state.encoder, name) for name in EncoderState.__slots__}


def assert_same_state(got: UserState, want: UserState) -> None:
    assert (got.model_tag, got.updated_ms, got.applied) == (
        want.model_tag,
        want.updated_ms,
        want.applied,
    )
    assert encoder_fields(got) == encoder_fields(want)
    assert np.array_equal(got.window, want.window) and got.window.shape == want.window.shape
    assert np.array_equal(got.h, want.h) and np.array_equal(got.c, want.c)
    assert sequence_records(got.sequence) == sequence_records(want.sequence)


def test_format_4_bytes_are_the_pinned_ones() -> None:
    assert encode_state(small_state(applied=True)) == FORMAT_4
    read = decode_state(FORMAT_4, N_FEATURES_AT_PIN)
    assert_same_state(read, small_state(applied=True))
    assert encode_state(read) == FORMAT_4


def test_format_3_bytes_are_still_read() -> None:
    read = decode_state(FORMAT_3, N_FEATURES_AT_PIN)
    assert_same_state(read, small_state(applied=False))
    assert encode_state(read) == encode_state(small_state(applied=False))
