"""Management commands: import, export, project and token creation, the demo."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from annotate.models import ApiToken, Dialogue, Membership, Project, Utterance
from annotate.services import api_token_authenticate
from tests.conftest import dialogue, jsonl


def _call(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


def test_import_transcripts_reports_counts(project, tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(jsonl(dialogue("a"), dialogue("b", n_turns=3)))
    assert "2 created, 0 updated, 0 skipped; 5 utterances" in _call(
        "import_transcripts", str(path), "--project", "support"
    )
    assert "0 created, 0 updated, 2 skipped" in _call(
        "import_transcripts", str(path), "--project", "support"
    )
    assert "0 created, 2 updated" in _call(
        "import_transcripts", str(path), "--project", "support", "--update"
    )


def test_import_transcripts_fails_with_the_location_and_imports_nothing(
    project, tmp_path
):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(
        jsonl(dialogue("a")) + b'{"id": "b", "turns": [{"speaker": "A"}]}\n'
    )
    with pytest.raises(
        CommandError,
        match=r"calls.jsonl, line 2, field 'turns\[0\].text': missing\nNothing was imported.",
    ):
        _call("import_transcripts", str(path), "--project", "support")
    assert not Dialogue.objects.exists()


def test_import_transcripts_names_a_missing_project_or_file(project, tmp_path):
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        _call("import_transcripts", str(tmp_path / "x.jsonl"), "--project", "nope")
    with pytest.raises(CommandError, match="no such file"):
        _call("import_transcripts", str(tmp_path / "x.jsonl"), "--project", "support")


def test_export_transcripts_writes_a_file(project, import_bytes, tmp_path):
    import_bytes(jsonl(dialogue("a", llm={"act": "inform"})))
    out = tmp_path / "out.csv"
    _call(
        "export_transcripts",
        "--project",
        "support",
        "--format",
        "csv",
        "--output",
        str(out),
    )
    lines = out.read_text().splitlines()
    assert lines[0].startswith(
        "dialogue_id,position,speaker,text,timestamp,act_llm_label,"
    )
    assert len(lines) == 3


def test_create_project_and_token(db, django_user_model):
    assert "with tasks: act" in _call(
        "create_project", "calls", "--task", "act=inform,question"
    )
    project = Project.objects.get(slug="calls")
    assert list(project.tasks.get().labels.values_list("value", "key")) == [
        ("inform", "1"),
        ("question", "2"),
    ]
    with pytest.raises(CommandError):
        _call("create_project", "calls", "--task", "act=inform")
    with pytest.raises(CommandError, match="expected NAME=LABEL"):
        _call("create_project", "other", "--task", "act")
    user = django_user_model.objects.create_user("tess")
    key = _call("create_api_token", "tess").strip()
    assert api_token_authenticate(key=key) == user
    assert not ApiToken.objects.filter(key_hash=key).exists()  # only the hash is stored


def test_seed_demo_is_idempotent(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    first = _call("seed_demo")
    assert "30 dialogues imported" in first and "admin / " in first
    second = _call("seed_demo")
    assert "0 dialogues imported, 30 already there" in second
    assert Utterance.objects.count() > 150
    assert Membership.objects.filter(project__slug="demo").count() == 3
    assert (
        first.split("admin / ")[1].split()[0] == second.split("admin / ")[1].split()[0]
    )
