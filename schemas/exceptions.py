"""Exceptions raised while decoding messages."""


class PropensityError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidEvent(PropensityError):
    """An input message that breaks the event contract.

    ``reason`` is a short, bounded code (used as a metric label and a DLQ header);
    ``detail`` is the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
