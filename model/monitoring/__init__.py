"""Live model monitoring, pure and Kafka-free: figures of the model's quality over windows of
resolved outcomes, and drift of its scores and inputs against the reference distributions its
artifact stores. The worker and ``propensity monitor`` feed them records and export what they
return.

Imports ``schemas``, ``model.serving`` and ``model.evaluation.measures`` (the same measures the
offline evaluation reports, so live and offline figures agree).
"""
