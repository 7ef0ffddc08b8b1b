"""The propensity model, split by role.

- ``model.serving``: what the worker loads and runs, and the definitions training shares with
  it: feature encoder and user state, label definition, network, TorchScript export/load,
  incremental scorer. Imports ``schemas`` only.
- ``model.training``: datasets from event logs, splits, batches, fitting, calibration, the
  ``train`` pipeline. Imports ``model.serving``, ``model.importers``, ``model.simulate``.
- ``model.evaluation``: baselines, metrics with bootstrap intervals, reports and plots.
  Imports ``model.training`` and ``model.serving``.
- ``model.importers``: public shop logs to the event contract. Imports ``schemas`` only.
- ``model.simulate``: the shopper simulator (demos, load, ground truth). Imports ``schemas``
  and ``model.importers``.

``model.network`` (the nn.Module) stays at the top: saved model files name their TorchScript
code by that path. Nothing in ``model`` imports ``streams``.
"""
