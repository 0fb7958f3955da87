"""Faults of a run: the injector, one class per fault kind, and the network guards."""
