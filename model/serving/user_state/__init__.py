"""One user's state, owned here: what the stream remembers about a shopper and how it changes.

- ``records``: one event as the state keeps it (``EventRecord``) and the packed sequence.
- ``encoder``: THE event -> feature encoder: its memory (``EncoderState``), the feature row
  and one step. Training, evaluation and the stream all encode through it.
- ``machine``: ``UserState`` (sequence, encoder and network state, applied offsets).
- ``layout``: the versioned binary form of a ``UserState`` in the table and its changelog.

The scorer runs the network over what this package gives it and over nothing else.
"""

from model.serving.user_state.encoder import (
    ENCODER_VERSION,
    FEATURE_NAMES,
    FEATURES,
    MAX_CART_ITEMS,
    MAX_RECENT_CATEGORIES,
    MAX_RECENT_ITEMS,
    MAX_RECENT_VIEWS,
    MAX_SESSION_CATEGORIES,
    N_FEATURES,
    SESSION_GAP_MS,
    EncoderState,
    FeatureRow,
    FeatureSpec,
    encode_events,
    encode_records,
    encode_step,
    feature_spec_hash,
)
from model.serving.user_state.layout import (
    STATE_FORMAT,
    decode_state,
    encode_state,
    state_updated_ms,
)
from model.serving.user_state.machine import (
    MAX_APPLIED_SOURCES,
    UserState,
    model_tag,
    source_id,
)
from model.serving.user_state.records import (
    ADD_TO_CART,
    PURCHASE,
    REMOVE_FROM_CART,
    SEQUENCE_DTYPE,
    SEQUENCE_RECORD,
    VIEW,
    WISHLIST,
    EventRecord,
    record_from_event,
    records_to_sequence,
    sequence_records,
    stable_hash,
)

__all__ = [
    "ADD_TO_CART",
    "ENCODER_VERSION",
    "FEATURES",
    "FEATURE_NAMES",
    "MAX_APPLIED_SOURCES",
    "MAX_CART_ITEMS",
    "MAX_RECENT_CATEGORIES",
    "MAX_RECENT_ITEMS",
    "MAX_RECENT_VIEWS",
    "MAX_SESSION_CATEGORIES",
    "N_FEATURES",
    "PURCHASE",
    "REMOVE_FROM_CART",
    "SEQUENCE_DTYPE",
    "SEQUENCE_RECORD",
    "SESSION_GAP_MS",
    "STATE_FORMAT",
    "VIEW",
    "WISHLIST",
    "EncoderState",
    "EventRecord",
    "FeatureRow",
    "FeatureSpec",
    "UserState",
    "decode_state",
    "encode_events",
    "encode_records",
    "encode_state",
    "encode_step",
    "feature_spec_hash",
    "model_tag",
    "record_from_event",
    "records_to_sequence",
    "sequence_records",
    "source_id",
    "stable_hash",
    "state_updated_ms",
]
