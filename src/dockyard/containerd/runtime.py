"""Containers, tasks and events: the ``Namespace`` methods for running things."""

from __future__ import annotations


class RuntimeCalls:
    pass
