"""Parley's machine-learning core: plain Python + PyTorch, never imports Django.

Torch-free pieces (`learner.ensemble`) import without loading torch, so the import path of
the web application stays light.
"""

from __future__ import annotations

from .ensemble import agreement, soft_label

__all__ = ["agreement", "soft_label"]
