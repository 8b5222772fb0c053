"""Shared fixtures: a project with two label tasks and the personas who work on it.

Personas: `admin_alice` (project admin), `lead_lena`, `annotator_ann` and `annotator_bob`,
`outsider_olga` (no membership) and `root` (superuser).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from annotate import services
from annotate.models import Project
from tests.factories import MembershipFactory, UserFactory

TASKS = {
    "act": ["inform", "question", "directive", "commissive"],
    "sentiment": ["positive", "negative", "neutral"],
}


@pytest.fixture
def project(db: Any) -> Project:
    return services.project_create(name="Support calls", slug="support", tasks=TASKS)


def _member(project: Project, username: str, role: str) -> Any:
    user = UserFactory(username=username)
    MembershipFactory(project=project, user=user, role=role)
    return user


@pytest.fixture
def admin_alice(project: Project) -> Any:
    return _member(project, "alice", "admin")


@pytest.fixture
def lead_lena(project: Project) -> Any:
    return _member(project, "lena", "lead")


@pytest.fixture
def annotator_ann(project: Project) -> Any:
    return _member(project, "ann", "annotator")


@pytest.fixture
def annotator_bob(project: Project) -> Any:
    return _member(project, "bob", "annotator")


@pytest.fixture
def outsider_olga(db: Any) -> Any:
    return UserFactory(username="olga")


@pytest.fixture
def root(db: Any) -> Any:
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def dialogue(ext_id: str = "d1", n_turns: int = 2, **turn_extra: Any) -> dict[str, Any]:
    """A valid JSONL dialogue object with `n_turns` turns."""
    return {
        "id": ext_id,
        "turns": [
            {"speaker": "AB"[i % 2], "text": f"utterance {i} of {ext_id}", **turn_extra}
            for i in range(n_turns)
        ],
    }


def jsonl(*objects: Any) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objects).encode()


@pytest.fixture
def import_bytes(project: Project) -> Callable[..., services.ImportResult]:
    """Import raw bytes into `project` as the management command would."""

    def run(
        data: bytes, *, name: str = "calls.jsonl", **kwargs: Any
    ) -> services.ImportResult:
        return services.transcripts_import(
            project=project, stream=io.BytesIO(data), name=name, **kwargs
        )

    return run
