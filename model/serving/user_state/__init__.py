"""One user's state, owned here: what the stream remembers about a shopper and how it changes.

- ``records``: one event as the state keeps it (``EventRecord``) and the packed sequence.
- ``encoder``: THE event -> feature encoder: its memory (``EncoderState``), the named
  feature row (``FeatureRow``), one step, and ``FeatureSpec``, all of it as one object.
  Training, evaluation and the stream all encode through it.
- ``state``: ``UserState``: sequence, encoder memory, network state, applied offsets.
- ``layout``: a ``UserState`` as bytes in the table and its changelog (formats 3 and 4).
- ``machine``: ``StateMachine``: a new state, a stored one, and what one event does to it
  (append, start afresh after the TTL, rebuild from the sequence).

Adding a feature touches ``encoder`` only (and a model trained on it). The scorer runs the
network over what this package gives it and over nothing else.
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
    DEFAULT_USER_TTL_MS,
    DEFAULT_WINDOW_SIZE,
    Applied,
    StateMachine,
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
from model.serving.user_state.state import (
    MAX_APPLIED_SOURCES,
    UserState,
    model_tag,
    source_id,
)

__all__ = [
    "ADD_TO_CART",
    "DEFAULT_USER_TTL_MS",
    "DEFAULT_WINDOW_SIZE",
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
    "Applied",
    "EncoderState",
    "EventRecord",
    "FeatureRow",
    "FeatureSpec",
    "StateMachine",
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
