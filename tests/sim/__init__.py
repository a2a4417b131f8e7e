"""Deterministic simulation of the scheduler core (see tests/sim/world.py and oracle.py)."""
