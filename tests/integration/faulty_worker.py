"""`propensity worker` with a scoring fault injected at a seam we own: any batch holding an
event of user "boom" raises, as a model or state bug would. Run as
``python -m tests.integration.faulty_worker`` with the worker's environment."""

from collections.abc import Sequence
from typing import Any

from model.serving.scorer import SequenceScorer
from schemas.events import ShopEvent
from streams.cli import main

_score = SequenceScorer.score


def _faulty_score(
    self: SequenceScorer, events: Sequence[ShopEvent], *args: Any, **kwargs: Any
) -> Any:
    if any(event.user_id == "boom" for event in events):
        raise RuntimeError("injected scoring fault")
    return _score(self, events, *args, **kwargs)


if __name__ == "__main__":
    SequenceScorer.score = _faulty_score  # type: ignore[method-assign]
    main(["worker"])
