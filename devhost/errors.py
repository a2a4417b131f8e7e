"""devhost's own errors: one root, ``DevhostError``."""

from __future__ import annotations


class DevhostError(Exception):
    """Root of the errors devhost raises itself (not the app's, which it reports as they are)."""
