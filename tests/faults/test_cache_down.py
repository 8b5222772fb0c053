"""Redis (the cache) is down: the queue works, degraded; a stored label is never said lost."""

from __future__ import annotations

import pytest

from annotate.models import HumanLabel, QueueItem
from tests.conftest import dialogue, jsonl


@pytest.fixture
def act(project, import_bytes, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    import_bytes(
        jsonl(*[dialogue(f"d{i}", n_turns=3, llm={"act": "inform"}) for i in range(3)])
    )
    return project.tasks.get(name="act")


def test_the_queue_project_and_dashboard_pages_answer_without_the_cache(
    private_redis, client, act, annotator_ann, lead_lena
):
    private_redis.stop()
    client.force_login(annotator_ann)
    queue = client.get("/projects/support/tasks/act/queue/")
    assert queue.status_code == 200 and "Left in the queue" in queue.content.decode()
    assert client.get("/projects/support/").status_code == 200
    client.force_login(lead_lena)
    assert client.get("/projects/support/tasks/act/dashboard/").status_code == 200


def test_submits_without_the_cache_are_stored_and_answered_as_stored(
    private_redis, client, act, annotator_ann
):
    client.force_login(annotator_ann)
    client.get("/projects/support/tasks/act/queue/")
    private_redis.stop()
    items = QueueItem.objects.filter(task=act, claimed_by=annotator_ann)
    for n, item in enumerate(items):
        response = client.post(
            f"/projects/support/tasks/act/queue/{item.pk}/submit",
            {"label": "question", "submission_key": f"k{n}", "showing": [item.pk]},
            headers={"X-Parley-Fragment": "1"},
        )
        assert response.status_code == 200 and response["X-Parley-Saved"]
    assert HumanLabel.objects.filter(annotator=annotator_ann).count() == len(items) == 2
    private_redis.start()  # and back: the cache is used again, nothing to repair
    assert client.get("/projects/support/tasks/act/queue/").status_code == 200


def test_the_token_api_counts_in_redis_and_lets_requests_through_while_it_is_down(
    private_redis, client, act, admin_alice, settings
):
    from django.core.cache import cache

    from annotate import services

    settings.PARLEY_API_REQUESTS_PER_MIN = 2
    _, key = services.api_token_create(user=admin_alice, name="t")
    headers = {"Authorization": f"Bearer {key}"}
    codes = [
        client.get("/api/projects/", headers=headers).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]  # counted in one round trip (`count`)
    assert cache.count("probe", 10) == 1 and cache.count("probe", 10) == 2
    private_redis.stop()
    cache._down_until = 0.0
    assert cache.count("probe", 10) is None
    assert client.get("/api/projects/", headers=headers).status_code == 200
