from __future__ import annotations

from tests.learner.conftest import tiny_backbone  # noqa: F401 - shared fixture
