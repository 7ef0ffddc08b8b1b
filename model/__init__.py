"""The propensity model: features, network, training, evaluation, export and simulation."""
