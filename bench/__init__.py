"""Benchmarks of jobs_core on Azurite: ``python -m bench [--quick] [--out PATH]``.

See ``bench/cli.py`` for the figures measured and ``bench/report.py`` for the targets.
"""
