"""Marketing actions decided from propensities: the policy file, the pure decision step, and
their wiring into the worker.

``policy.py`` loads and validates the policy file into the frozen ``rules.py`` dataclasses
(``policy_checks.py`` checks each value through ``policy_table.py``'s typed reads,
``policy_lines.py`` finds the line a problem sits on); ``local_time.py`` holds the shop's
local days and quiet hours; ``assignment.py`` the control-group hash and the action id;
``state.py`` one user's action state and ``state_codec.py`` its bytes; ``propensity_input.py``
reads a propensity event; ``matching.py`` says whether a rule matches it; ``decide.py`` is the
step itself (a propensity or the event-time watermark in, decisions and suppressions out).
``table.py`` keeps the states in a changelog-backed table, ``handler.py`` runs the step in the
propensities agent (streams/worker/agents/outcomes.py) and hands each decision to the outcome
join for its uplift outcome; ``webhook.py`` (with ``delivery_pacing.py``) POSTs treatment
actions for streams/worker/agents/delivery.py.

Layer: streams.worker (may import schemas, model.serving, model.monitoring).
"""
