"""The development harness: the embedded Tansu broker, the event producer, the worker
supervisor, the throughput benchmark and the fault drills (SIGKILL, restart).

Used by the command line (``propensity broker|replay|bench|demo``) and the tests. May import
``streams.worker``, ``model`` and ``schemas``; never ``streams.cli``.
"""
