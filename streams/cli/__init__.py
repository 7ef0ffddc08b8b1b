"""The `propensity` command line: one click group and its subcommands, registered here.

Each ``*_command(s)`` module defines plain click commands and never imports this package, so
there is no import cycle. The command line may import the worker, the development harness,
the model and the schemas; nothing imports the command line.
"""

import click

from streams.cli.bench_commands import bench, bench_drift
from streams.cli.data_commands import import_command, simulate_command
from streams.cli.demo_command import demo
from streams.cli.model_commands import evaluate, train
from streams.cli.monitor_command import monitor
from streams.cli.service_commands import broker, replay, tail, worker
from streams.cli.uplift_command import uplift

SUBCOMMANDS: tuple[click.Command, ...] = (
    worker,
    broker,
    replay,
    tail,
    monitor,
    uplift,
    import_command,
    simulate_command,
    train,
    evaluate,
    bench,
    bench_drift,
    demo,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="propensity")
def main() -> None:
    """Streaming purchase-propensity scoring for online shops.

    Every option that maps to a runtime setting names its environment variable in its help.
    TLS and SASL for a secured Kafka are set only in the environment (PROPENSITY_SECURITY_PROTOCOL,
    PROPENSITY_SSL_*, PROPENSITY_SASL_*; see the README's settings table).
    """


for _command in SUBCOMMANDS:
    main.add_command(_command)
