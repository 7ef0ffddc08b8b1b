"""Offline evaluation: heuristic and tree baselines, classification measures with bootstrap
intervals, the report and its plots (``propensity evaluate``).

Imports ``model.training``, ``model.serving`` and ``schemas``.
"""
