"""The `propensity` command: one click group, subcommands registered by the modules below."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="propensity")
def main() -> None:
    """Streaming purchase-propensity scoring for online shops.

    Every option that maps to a runtime setting names its environment variable in its help.
    TLS and SASL for a secured Kafka are set only in the environment (PROPENSITY_SECURITY_PROTOCOL,
    PROPENSITY_SSL_*, PROPENSITY_SASL_*; see the README's settings table).
    """


# Importing these modules registers their subcommands on `main`.
from streams.cli import bench, data, demo, runtime, training  # noqa: E402

__all__ = ["bench", "data", "demo", "main", "runtime", "training"]
