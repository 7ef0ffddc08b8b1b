"""The outcome join: every published propensity joined with what the shopper did next.

``pending.py`` stores a user's pending predictions as compact bytes; ``step.py`` is the pure
join (records in, outcomes and new pending lists out) and the watermark sweep. The agent that
runs them is ``streams/worker/agents/outcomes.py``.
"""
