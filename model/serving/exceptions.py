"""Exceptions raised by the model package."""

from schemas.exceptions import PropensityError


class ModelArtifactError(PropensityError):
    """A model file that is missing, unreadable or built for another feature spec."""
