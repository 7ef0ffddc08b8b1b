"""One user's action state as compact bytes (the table's value), versioned, no JSON.

Layout, little-endian: ``HEADER`` then the user id, each cooldown (``COOLDOWN`` + action
name), the pending trigger when ``has_pending`` (``PENDING`` + event id + model version), each
held decision (``HELD`` + action, action id, event id, model version, reason). A text is its
UTF-8 length (u16) and bytes. Scores stay float64, exactly as published; NaN = None. A value
of another format, cut short or with bytes left over is refused with ActionStateFormatError.
"""

import math
from typing import Any, Final

import numpy as np

from schemas.events import EVENT_TYPE_INDEX, EVENT_TYPES
from streams.worker.actions.state import ActionState, Decision, PendingTrigger, ScoredEvent

ACTION_STATE_FORMAT: Final = 1
HEADER: Final = np.dtype(
    [
        ("format", "u1"),
        ("has_pending", "u1"),
        ("cooldowns", "u1"),
        ("held", "<u2"),
        ("day", "<i4"),
        ("day_count", "<u2"),
    ]
)
COOLDOWN: Final = np.dtype([("decided_at", "<i8")])
PENDING: Final = np.dtype(
    [
        ("ts", "<i8"),
        ("evaluated_until_ms", "<i8"),
        ("purchase", "<f8"),
        ("cart_abandon", "<f8"),
        ("cart_value", "<f8"),
        ("cart_items", "<i4"),  # -1: absent
        ("event_type", "u1"),
    ]
)
HELD: Final = np.dtype(
    [
        ("decided_at", "<i8"),
        ("deliver_at", "<i8"),
        ("purchase", "<f8"),
        ("cart_abandon", "<f8"),
        ("control", "u1"),
    ]
)
_TEXT_LENGTH: Final = np.dtype("<u2")
MAX_TEXT_BYTES: Final = 65_535


class ActionStateFormatError(ValueError):
    """Bytes that are not an action state of a known format."""


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def record(self, dtype: np.dtype, *values: float | int | bool) -> None:
        self.parts.append(np.array([tuple(values)], dtype).tobytes())

    def text(self, value: str) -> None:
        raw = value.encode("utf-8")
        if len(raw) > MAX_TEXT_BYTES:
            raise ValueError(f"text longer than {MAX_TEXT_BYTES} bytes in an action state")
        self.parts += [np.array(len(raw), _TEXT_LENGTH).tobytes(), raw]


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.at = 0

    def record(self, dtype: np.dtype) -> tuple[Any, ...]:
        """The next fixed-size record, as Python numbers."""
        if self.at + dtype.itemsize > len(self.raw):
            raise ActionStateFormatError("action state cut short")
        row = np.frombuffer(self.raw, dtype, count=1, offset=self.at)[0].tolist()
        self.at += dtype.itemsize
        return tuple(row)

    def text(self) -> str:
        (length,) = self.record(np.dtype([("n", _TEXT_LENGTH)]))
        end = self.at + int(length)
        if end > len(self.raw):
            raise ActionStateFormatError("action state cut short")
        value = self.raw[self.at : end].decode("utf-8")
        self.at = end
        return value


def encode_action_state(state: ActionState) -> bytes:
    """The bytes of one user's action state."""
    out = _Writer()
    pending = state.pending
    out.record(
        HEADER,
        ACTION_STATE_FORMAT,
        pending is not None,
        len(state.last_decided),
        len(state.held),
        state.day,
        state.day_count,
    )
    out.text(state.user_id)
    for action, decided_at in state.last_decided:
        out.record(COOLDOWN, decided_at)
        out.text(action)
    if pending is not None:
        event = pending.event
        items = -1 if event.cart_items is None else event.cart_items
        out.record(
            PENDING,
            event.ts,
            pending.evaluated_until_ms,
            event.purchase,
            _nan_if_none(event.cart_abandon),
            _nan_if_none(event.cart_value),
            items,
            EVENT_TYPE_INDEX[event.event_type],
        )
        out.text(event.event_id)
        out.text(event.model_version)
    for d in state.held:
        control = d.assignment == "control"
        out.record(
            HELD, d.decided_at, d.deliver_at, d.purchase, _nan_if_none(d.cart_abandon), control
        )
        for text in (d.action, d.action_id, d.event_id, d.model_version, d.reason):
            out.text(text)
    return b"".join(out.parts)


def holds_trigger(raw: bytes) -> bool:
    """Whether a stored state has an inactivity trigger or a held decision (header only)."""
    header = np.frombuffer(raw, HEADER, count=1)[0]
    return bool(header["has_pending"]) or int(header["held"]) > 0


def decode_action_state(raw: bytes) -> ActionState:
    """The state ``encode_action_state`` stored; ActionStateFormatError for anything else."""
    try:
        state, at = _decode(_Reader(raw))
    except ActionStateFormatError:
        raise
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ActionStateFormatError(f"unreadable action state: {exc}") from None
    if at != len(raw):
        raise ActionStateFormatError(f"{len(raw) - at} bytes after the action state")
    return state


def _decode(read: _Reader) -> tuple[ActionState, int]:
    form, has_pending, n_cooldowns, n_held, day, day_count = read.record(HEADER)
    if form != ACTION_STATE_FORMAT:
        raise ActionStateFormatError(f"action-state format {form} is not {ACTION_STATE_FORMAT}")
    user_id = read.text()
    last = []
    for _ in range(int(n_cooldowns)):
        (decided_at,) = read.record(COOLDOWN)
        last.append((read.text(), int(decided_at)))
    pending = _decode_pending(read) if has_pending else None
    held = tuple(_decode_held(read, user_id) for _ in range(int(n_held)))
    state = ActionState(
        user_id=user_id,
        last_decided=tuple(last),
        day=int(day),
        day_count=int(day_count),
        pending=pending,
        held=held,
    )
    return state, read.at


def _decode_pending(read: _Reader) -> PendingTrigger:
    ts, evaluated_until, purchase, cart_abandon, cart_value, items, type_index = read.record(
        PENDING
    )
    event = ScoredEvent(
        event_id=read.text(),
        event_type=EVENT_TYPES[type_index],
        ts=ts,
        model_version=read.text(),
        purchase=purchase,
        cart_abandon=_none_if_nan(cart_abandon),
        cart_items=None if items < 0 else items,
        cart_value=_none_if_nan(cart_value),
    )
    return PendingTrigger(event, evaluated_until)


def _decode_held(read: _Reader, user_id: str) -> Decision:
    decided_at, deliver_at, purchase, cart_abandon, control = read.record(HELD)
    action, action_id, event_id, model_version, reason = (read.text() for _ in range(5))
    return Decision(
        action=action,
        action_id=action_id,
        user_id=user_id,
        assignment="control" if control else "treatment",
        decided_at=decided_at,
        deliver_at=deliver_at,
        event_id=event_id,
        model_version=model_version,
        purchase=purchase,
        cart_abandon=_none_if_nan(cart_abandon),
        reason=reason,
    )
