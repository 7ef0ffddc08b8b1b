"""Message contracts: the input shop event, the propensity event and the dead-letter record."""
