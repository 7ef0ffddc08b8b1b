"""Errors of the marketing-action policy."""

from schemas.exceptions import PropensityError


class PolicyError(PropensityError):
    """A policy file that cannot be used; the message lists every problem as
    ``<file>:<line>: <problem>``, one per line."""
