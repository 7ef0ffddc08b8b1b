"""The scoring worker: everything that runs inside ``propensity worker``.

Settings, the Faust app and its bundling transport, the state table, the agents, the scoring
step, the publisher, lag and Prometheus metrics, topic administration and Kafka security.
May import ``model`` (serving only) and ``schemas``; never ``streams.cli`` or
``streams.harness``.
"""
