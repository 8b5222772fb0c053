"""Running a project in the app: members and roles, task settings, the prompt bank, LLM runs."""

from __future__ import annotations

import pytest

from annotate import services
from annotate.models import LlmFailure, LlmRun, Membership, PromptTemplate
from tests.conftest import dialogue, jsonl

MEMBERS = "/projects/support/members/"
SETTINGS = "/projects/support/tasks/act/settings/"


def test_members_are_invited_changed_and_removed_but_the_last_admin_stays(
    client, project, admin_alice, annotator_ann, django_user_model
):
    django_user_model.objects.create_user("newbie")
    client.force_login(admin_alice)
    page = client.post(
        f"{MEMBERS}set", {"username": "newbie", "role": "lead"}, follow=True
    )
    assert "newbie is now lead." in page.content.decode()
    assert (
        Membership.objects.get(project=project, user__username="newbie").role == "lead"
    )
    missing = client.post(
        f"{MEMBERS}set", {"username": "ghost", "role": "lead"}, follow=True
    )
    assert "No active user named “ghost”" in missing.content.decode()
    # the last admin can be neither demoted nor removed
    demote = client.post(
        f"{MEMBERS}set", {"username": "alice", "role": "annotator"}, follow=True
    )
    assert "is the project&#x27;s last admin" in demote.content.decode()
    remove = client.post(f"{MEMBERS}{admin_alice.pk}/remove", follow=True)
    assert "last admin" in remove.content.decode()
    assert Membership.objects.get(project=project, user=admin_alice).role == "admin"
    client.post(f"{MEMBERS}{annotator_ann.pk}/remove")
    assert not Membership.objects.filter(project=project, user=annotator_ann).exists()


def test_two_admins_may_hand_over(project, admin_alice, lead_lena):
    services.membership_set(project=project, user=lead_lena, role="admin")
    services.membership_set(project=project, user=admin_alice, role="lead")
    with pytest.raises(ValueError, match="last admin"):
        services.membership_remove(project=project, user=lead_lena)


def test_only_admins_run_the_project(client, project, lead_lena, annotator_ann):
    for user in (lead_lena, annotator_ann):
        client.force_login(user)
        assert client.get(MEMBERS).status_code == 403
        assert client.get(SETTINGS).status_code == 403
        assert (
            client.post(f"{MEMBERS}set", {"username": "x", "role": "admin"}).status_code
            == 403
        )


def test_task_settings_and_the_prompt_bank(client, project, admin_alice, import_bytes):
    import_bytes(jsonl(dialogue("d1", n_turns=4)))
    client.force_login(admin_alice)
    client.post(
        f"{SETTINGS}update",
        {
            "title": "Dialogue acts",
            "guidelines": "question: asks",
            "budget_mode": "on",
            "budget_tolerance": "2",
        },
    )
    task = project.tasks.get(name="act")
    assert (
        task.title,
        task.budget_mode,
        task.budget_tolerance,
        task.hide_suggestion,
    ) == (
        "Dialogue acts",
        True,
        2.0,
        False,
    )
    bad = client.post(f"{SETTINGS}update", {"budget_tolerance": "500"}, follow=True)
    assert "Not saved" in bad.content.decode()
    client.post(
        f"{SETTINGS}prompts",
        {
            "name": "P1",
            "template": "Label: {utterance}",
            "context_turns": "2",
            "active": "on",
        },
    )
    prompt = PromptTemplate.objects.get(task=task, name="P1")
    assert (prompt.template, prompt.context_turns, prompt.active) == (
        "Label: {utterance}",
        2,
        True,
    )
    client.post(f"{SETTINGS}prompts", {"name": "P1", "template": "Label: {utterance}"})
    assert not PromptTemplate.objects.get(task=task, name="P1").active  # turned off
    preview = client.post(
        f"{SETTINGS}prompts/preview",
        {"template": "Before:\n{context}\nNow: {utterance}", "context_turns": "2"},
    )
    text = preview.content.decode()
    assert "Now: " in text and "Before:" in text and "You label utterances" in text
    page = client.get(SETTINGS).content.decode()
    assert "P1" in page and "No LLM is configured" in page


def test_llm_runs_start_show_failures_and_ask_them_again(
    client, project, admin_alice, import_bytes, settings
):
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "fake-1"
    import_bytes(jsonl(dialogue("d1", n_turns=2)))
    task = project.tasks.get(name="act")
    client.force_login(admin_alice)
    response = client.post(f"{SETTINGS}llm-runs", follow=True)
    run = LlmRun.objects.get(task=task)
    assert f"LLM run {run.pk} is queued." in response.content.decode()
    row = client.get(f"{SETTINGS}llm-runs/{run.pk}")
    assert row.status_code == 200 and "hx-get" in row.content.decode()  # polls
    LlmRun.objects.filter(pk=run.pk).update(
        status="succeeded", done=3, failed=1, total=4
    )
    LlmFailure.objects.create(
        run=run,
        utterance=task.project.dialogues.get().utterances.first(),
        task=task,
        prompt="P1",
        model="fake-1",
        error="no label in the answer",
        raw="I think it is a greeting",
    )
    assert client.get(f"{SETTINGS}llm-runs/{run.pk}").status_code == 286  # over
    page = client.get(SETTINGS).content.decode()
    assert "I think it is a greeting" in page and "Failed answers (1)" in page
    client.post(f"{SETTINGS}llm-runs", {"retry": "1"})
    assert not LlmFailure.objects.exists()
    assert LlmRun.objects.filter(task=task).count() == 2


@pytest.mark.parametrize(
    "table", ["softlabel", "llmlabel", "prediction", "queueitem", "queueskip"]
)
def test_the_tables_parley_writes_are_read_only_in_the_admin(client, root, table):
    client.force_login(root)
    assert client.get(f"/admin/annotate/{table}/").status_code == 200
    assert client.get(f"/admin/annotate/{table}/add/").status_code == 403


def test_projects_are_created_by_those_allowed_and_their_creator_is_admin(
    client, root, lead_lena, project
):
    client.force_login(
        lead_lena
    )  # a lead of another project: no "add project" permission
    assert client.get("/projects/new/").status_code == 403
    assert "New project" not in client.get("/").content.decode()
    client.force_login(root)
    assert "New project" in client.get("/").content.decode()
    taken = client.post("/projects/new/", {"name": "X", "slug": "support"}, follow=True)
    assert "the short name “support” is taken" in taken.content.decode()
    bad = client.post("/projects/new/", {"name": "X", "slug": "a b"}, follow=True)
    assert "letters, digits" in bad.content.decode()
    response = client.post("/projects/new/", {"name": "Calls", "slug": "calls"})
    assert response["Location"] == "/projects/calls/tasks/new/"
    assert Membership.objects.get(project__slug="calls", user=root).role == "admin"


def test_label_tasks_are_added_with_their_labels_in_order(client, project, admin_alice):
    client.force_login(admin_alice)
    url = "/projects/support/tasks/new/"
    for labels, error in (
        ("only", "at least two labels"),
        ("a\na", "distinct"),
    ):
        page = client.post(url, {"name": "intent", "labels": labels}, follow=True)
        assert error in page.content.decode()
    taken = client.post(url, {"name": "act", "labels": "a\nb"}, follow=True)
    assert "has a task “act” already" in taken.content.decode()
    response = client.post(
        url,
        {
            "name": "intent",
            "title": "Intent",
            "labels": "book: wants a booking\ncancel\n\nother",
        },
    )
    assert response["Location"] == "/projects/support/tasks/intent/settings/"
    task = project.tasks.get(name="intent")
    assert task.title == "Intent"
    assert [(x.value, x.key, x.description) for x in task.ordered_labels()] == [
        ("book", "1", "wants a booking"),
        ("cancel", "2", ""),
        ("other", "3", ""),
    ]


def test_guidelines_are_markdown_shown_safely(
    client, project, annotator_ann, import_bytes
):
    import_bytes(jsonl(dialogue("d1", n_turns=2)))
    task = project.tasks.get(name="act")
    task.guidelines = "**question**: asks\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1))"
    task.save()
    client.force_login(annotator_ann)
    html = client.get("/projects/support/tasks/act/queue/").content.decode()
    assert "<strong>question</strong>: asks" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html


def test_labels_are_reordered_rekeyed_and_coloured(client, project, admin_alice):
    task = project.tasks.get(name="act")
    labels = list(task.ordered_labels())  # inform, question, directive, commissive: 1–4
    client.force_login(admin_alice)
    form = {}
    for n, label in enumerate(labels):
        form |= {
            f"order-{label.pk}": str(3 - n),  # reversed
            f"key-{label.pk}": str(4 - n),  # the keys swap places
            f"description-{label.pk}": f"meaning {n}",
            f"colour-{label.pk}": "5" if n == 0 else "",
        }
    page = client.post(f"{SETTINGS}labels", form, follow=True)
    assert "Labels saved." in page.content.decode()
    after = [(x.value, x.key, x.colour) for x in task.ordered_labels()]
    assert after == [
        ("commissive", "1", None),
        ("directive", "2", None),
        ("question", "3", None),
        ("inform", "4", 5),
    ]
    keys = {f"key-{label.pk}": label.key for label in labels}
    for change, error in (
        ({f"key-{labels[0].pk}": "s"}, "workspace"),
        ({f"key-{labels[0].pk}": keys[f"key-{labels[1].pk}"]}, "same key"),
    ):
        page = client.post(f"{SETTINGS}labels", {**form, **keys, **change}, follow=True)
        assert (
            "Labels not saved" in page.content.decode()
            and error in page.content.decode()
        )
    assert [x.key for x in task.ordered_labels()] == ["1", "2", "3", "4"]


def test_the_project_is_renamed_but_keeps_its_short_name(client, project, admin_alice):
    client.force_login(admin_alice)
    client.post(f"{MEMBERS}project", {"name": "Calls 2027", "description": "d"})
    project.refresh_from_db()
    assert (project.name, project.description, project.slug) == (
        "Calls 2027",
        "d",
        "support",
    )
    empty = client.post(f"{MEMBERS}project", {"name": " "}, follow=True)
    assert "a project needs a name" in empty.content.decode()


def test_a_tasks_overlap_applies_to_the_items_created_from_then(
    client, project, admin_alice, import_bytes, settings
):
    from annotate.models import QueueItem

    settings.PARLEY_OVERLAP_FRACTION = 0.0
    client.force_login(admin_alice)
    client.post(f"{SETTINGS}update", {"overlap_fraction": "1", "budget_tolerance": "1"})
    task = project.tasks.get(name="act")
    assert task.overlap_fraction == 1.0
    import_bytes(jsonl(dialogue("d1", n_turns=3)))
    required = QueueItem.objects.filter(utterance__dialogue__external_id="d1")
    assert set(required.filter(task=task).values_list("required", flat=True)) == {2}
    assert set(required.exclude(task=task).values_list("required", flat=True)) == {1}
    bad = client.post(f"{SETTINGS}update", {"overlap_fraction": "2"}, follow=True)
    assert "the overlap is a share" in bad.content.decode()
    client.post(f"{SETTINGS}update", {"overlap_fraction": "", "budget_tolerance": "1"})
    task.refresh_from_db()
    assert task.overlap_fraction is None and task.overlap() == 0.0
