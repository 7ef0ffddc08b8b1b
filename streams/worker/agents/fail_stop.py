"""What the worker does on a fault that is not its input's: stop at once, committing nothing."""

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from streams.worker.metrics import WorkerMetrics

# Exit status of a worker stopped by a fault that is not its input's (EX_SOFTWARE).
FATAL_EXIT_CODE = 70

log = logging.getLogger(__name__)

FatalHandler = Callable[[BaseException], None]


def fail_stop(metrics: WorkerMetrics) -> FatalHandler:
    """What the worker does when scoring or publishing fails: stop at once, committing nothing.

    Faust's take_events acks a batch in a ``finally`` when the agent's loop is left by an
    exception, and its consumer commits acked offsets on stop; either would commit input whose
    outputs were never published. Exiting the process skips both: the successor re-reads from
    the last commit, and redelivered input that was already applied changes nothing.
    """

    def stop(exc: BaseException) -> NoReturn:
        metrics.ready.set(0)
        log.critical(
            "stopping the worker: %s: %s (not the input's fault; offsets of the unpublished "
            "batch are not committed, a restarted worker re-reads them)",
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        logging.shutdown()
        sys.stderr.flush()
        os._exit(FATAL_EXIT_CODE)

    return stop
