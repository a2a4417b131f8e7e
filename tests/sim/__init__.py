"""Deterministic simulation of the scheduler core (see tests/sim/world.py, workload.py and
oracle.py)."""
