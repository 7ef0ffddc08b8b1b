"""The streaming side, in three packages with one job each.

- ``streams.worker``: the scoring service (settings, Faust app, transport, tables, agents, the
  scoring step, publisher, lag, metrics, admin). Imports ``model`` and ``schemas`` only.
- ``streams.cli``: the ``propensity`` command line. May import everything below it.
- ``streams.harness``: the development harness (embedded broker, producer, worker supervisor,
  benchmarks and fault drills). May import the worker, ``model`` and ``schemas``.

Imports flow one way: schemas ← model ← worker ← command line / harness.
"""
