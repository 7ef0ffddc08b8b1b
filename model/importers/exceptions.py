"""Errors raised while importing public shop logs."""

from schemas.exceptions import PropensityError


class BadRow(PropensityError):
    """One input row that cannot become a contract event.

    ``reason`` is a short code from ``model.importers.import_report.BAD_ROW_REASONS``; ``detail``
    says what was wrong with the row.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnreadableInput(PropensityError):
    """An input file that cannot be opened or read at all (not one bad row)."""
