"""Marketing actions: the policy, the pure decision step, delivery and uplift wiring."""
