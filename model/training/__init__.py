"""Training: examples from event logs (with the serving feature code), time splits, batches,
fitting, calibration and the ``propensity train`` pipeline.

Imports ``model.serving``, ``model.importers``, ``model.simulate`` and ``schemas``.
"""
