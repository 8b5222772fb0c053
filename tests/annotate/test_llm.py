"""The LLM teacher: the client against a fake OpenAI-compatible server, and labelling runs."""

from __future__ import annotations

import time

import pytest

from annotate import services
from annotate.llm import (
    ChatClient,
    LlmError,
    LlmSettings,
    MalformedAnswer,
    RateLimiter,
    parse_answer,
)
from annotate.models import (
    LabelTask,
    LlmFailure,
    LlmLabel,
    LlmRun,
    PromptTemplate,
    SoftLabel,
    Utterance,
)
from tests.conftest import jsonl
from tests.fake_llm import FakeLlm

ACT = ["inform", "question", "directive", "commissive"]


@pytest.fixture
def fake():
    with FakeLlm() as server:
        yield server


def client_for(fake: FakeLlm, **kwargs) -> ChatClient:
    options = {
        "base_url": fake.base_url,
        "model": "fake-1",
        "backoff": 0.01,
        "timeout": 5.0,
        **kwargs,
    }
    return ChatClient(LlmSettings(**options))


def ask(client: ChatClient, text: str):
    return client.ask([{"role": "user", "content": f"Utterance: A: {text}"}], ACT)


# --- answers → distributions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"label": "question", "confidence": 0.8}', ("question", 0.8)),
        ('Sure! {"label": "Question", "confidence": "0.7"}', ("question", 0.7)),
        ('{"label": "inform"}', ("inform", None)),
        ("directive.", ("directive", None)),
    ],
)
def test_answers_are_read_leniently(text, expected):
    assert parse_answer(text, ACT) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"label": "greeting"}',
        '{"label": "inform", "confidence": 1.5}',
        '{"label": "inform",',
        "I think it is a statement.",
        '["inform"]',
        '{"label": "inform", "confidence": "high"}',
    ],
)
def test_anything_else_is_malformed(text):
    with pytest.raises(MalformedAnswer):
        parse_answer(text, ACT)


def test_log_probabilities_of_the_label_token_give_the_distribution(fake):
    answer = ask(client_for(fake), "where is it?")
    assert answer.source == "logprobs"
    assert answer.label == "question" and answer.confidence == 0.9
    # top tokens at the label: question 0.8, inform 0.15, "Sure" 0.05 (no label): renormalised
    assert answer.distribution == pytest.approx(
        {
            "inform": 0.15 / 0.95,
            "question": 0.8 / 0.95,
            "directive": 0.0,
            "commissive": 0.0,
        }
    )


def test_without_log_probabilities_the_verbalised_confidence_is_spread(fake):
    fake.refuse_logprobs = True
    client = client_for(fake)
    answer = ask(client, "it is here")
    assert answer.source == "verbalised"
    assert answer.distribution == pytest.approx(
        {
            "inform": 0.9,
            "question": 0.1 / 3,
            "directive": 0.1 / 3,
            "commissive": 0.1 / 3,
        }
    )
    assert client.logprobs is False  # remembered: the next request does not ask again
    ask(client, "again")
    assert "logprobs" not in fake.requests[-1]


def test_sampled_answers_give_vote_shares(fake):
    answer = ask(client_for(fake, samples=4, logprobs=False), "where?")
    assert fake.requests[-1]["n"] == 4
    assert answer.source == "samples" and answer.distribution["question"] == 1.0


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["429", "500", "bad-json"])
def test_transient_failures_are_retried(fake, fault):
    fake.faults = [fault, fault]
    client = client_for(fake)
    assert ask(client, "where?").label == "question"
    assert len(fake.requests) == 3
    assert client.usage.retries == 2 and client.usage.requests == 3


def test_a_slow_answer_times_out_and_is_asked_again(fake):
    fake.slow_s = 1.0
    fake.faults = ["slow"]
    assert ask(client_for(fake, timeout=0.3), "where?").label == "question"


def test_it_gives_up_after_its_retries(fake):
    fake.always = "500"
    with pytest.raises(LlmError, match="gave up after 3 attempts: HTTP 500"):
        ask(client_for(fake, max_retries=2), "where?")


def test_a_request_the_server_rejects_is_not_retried(fake):
    fake.faults = ["400"]
    with pytest.raises(LlmError, match="HTTP 400"):
        ask(client_for(fake), "where?")
    assert len(fake.requests) == 1


def test_the_rate_limiter_spaces_requests():
    limiter = RateLimiter(20.0)
    start = time.monotonic()
    for _ in range(6):
        limiter.acquire()
    assert time.monotonic() - start >= 5 / 20 - 0.01


# --- labelling runs --------------------------------------------------------------------------


@pytest.fixture
def act_task(project) -> LabelTask:
    task = project.tasks.get(name="act")
    for name, turns in (("P1", 2), ("P2", 0)):
        PromptTemplate.objects.create(
            task=task,
            name=name,
            template="{context}\nUtterance: {utterance}",
            context_turns=turns,
        )
    lines = [
        {
            "id": f"d{i}",
            "turns": [
                {"speaker": "A", "text": "where is it?"},
                {"speaker": "B", "text": "it is here"},
            ],
        }
        for i in range(5)
    ]
    services.transcripts_import(
        project=project, stream=__import__("io").BytesIO(jsonl(*lines)), name="t.jsonl"
    )
    return task


@pytest.fixture
def llm_settings(settings, fake):
    settings.LLM_BASE_URL = fake.base_url
    settings.LLM_MODEL = "fake-1"
    settings.LLM_CONCURRENCY = 3
    return settings


def run_for(task: LabelTask) -> LlmRun:
    return LlmRun.objects.create(task=task, model="fake-1")


def test_a_run_labels_every_utterance_under_every_prompt(act_task, fake, llm_settings):
    run = run_for(act_task)
    services.llm_run_execute(run_id=run.pk, client=client_for(fake, concurrency=3))
    run.refresh_from_db()
    assert (run.status, run.total, run.done, run.failed) == ("succeeded", 20, 20, 0)
    assert run.requests == 20 and run.prompt_tokens > 0 and run.completion_tokens == 240
    assert run.seconds > 0 and run.finished_at is not None
    labels = LlmLabel.objects.filter(task=act_task, model="fake-1")
    assert labels.count() == 20
    assert {
        (lbl.utterance.text, lbl.label.value)
        for lbl in labels.select_related("utterance", "label")
    } == {("where is it?", "question"), ("it is here", "inform")}
    soft = SoftLabel.objects.get(
        task=act_task, utterance__position=0, utterance__dialogue__external_id="d0"
    )
    assert (
        soft.label.value == "question"
        and soft.n_sources == 2
        and soft.agreement == pytest.approx(1.0)
    )
    assert 1 <= fake.max_in_flight <= 3


def test_the_prompt_shows_its_context_turns(act_task, fake, llm_settings):
    services.llm_run_execute(run_id=run_for(act_task).pk, client=client_for(fake))
    second_turn = [
        r["messages"][-1]["content"]
        for r in fake.requests
        if "B: it is here" in r["messages"][-1]["content"]
    ]
    assert (
        "A: where is it?\nUtterance: B: it is here" in second_turn
    )  # P1 shows 2 previous turns
    assert "\nUtterance: B: it is here" in second_turn  # P2 shows none
    assert "JSON" in fake.requests[0]["messages"][0]["content"]


def test_a_malformed_answer_is_asked_again_once_then_marked(
    act_task, fake, llm_settings
):
    fake.faults = ["malformed"]  # the first pair's first answer; its second is fine
    run = run_for(act_task)
    services.llm_run_execute(run_id=run.pk, client=client_for(fake, concurrency=1))
    run.refresh_from_db()
    assert (run.done, run.failed) == (20, 0)

    LlmLabel.objects.filter(
        task=act_task, prompt="P2", utterance__dialogue__external_id="d0"
    ).delete()
    fake.always = "malformed"
    run2 = run_for(act_task)
    services.llm_run_execute(run_id=run2.pk, client=client_for(fake, concurrency=1))
    run2.refresh_from_db()
    assert (run2.status, run2.total, run2.failed) == ("succeeded", 2, 2)
    failure = LlmFailure.objects.get(
        utterance__position=0, utterance__dialogue__external_id="d0"
    )
    assert (
        failure.attempts == 2
        and failure.raw == "I think it is a statement."
        and "neither JSON" in failure.error
    )


def test_a_run_cut_off_by_a_dead_endpoint_resumes_with_only_the_missing_pairs(
    act_task, fake, llm_settings
):
    run = run_for(act_task)
    fake.faults = ["ok"] * 6  # six good answers, then the endpoint is down for good
    fake.always = "500"
    services.llm_run_execute(
        run_id=run.pk,
        client=client_for(fake, concurrency=1, max_retries=1),
        batch_size=3,
    )
    run.refresh_from_db()
    assert run.status == "failed" and "HTTP 500" in run.error
    assert (
        LlmLabel.objects.filter(task=act_task).count() == run.done == 6
    )  # whole batches were kept

    fake.always = None
    fake.requests.clear()
    rerun = run_for(act_task)
    services.llm_run_execute(run_id=rerun.pk, client=client_for(fake))
    rerun.refresh_from_db()
    assert (rerun.status, rerun.total, rerun.done) == ("succeeded", 14, 14)
    assert len(fake.requests) == 14
    assert LlmLabel.objects.filter(task=act_task).count() == 20


def test_a_run_another_worker_holds_is_left_alone(act_task, fake, llm_settings):
    from datetime import timedelta

    from django.utils import timezone

    run = run_for(act_task)
    LlmRun.objects.filter(pk=run.pk).update(
        status="running", lease_until=timezone.now() + timedelta(minutes=5)
    )
    services.llm_run_execute(run_id=run.pk, client=client_for(fake))
    assert fake.requests == []
    LlmRun.objects.filter(pk=run.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    services.llm_run_execute(
        run_id=run.pk, client=client_for(fake)
    )  # its worker died: resumed
    assert LlmRun.objects.get(pk=run.pk).status == "succeeded"


def test_requesting_a_run_twice_queues_one(
    act_task, llm_settings, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("annotate.tasks.llm_label_run.delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.llm_run_request(task=act_task)
    with django_capture_on_commit_callbacks(execute=True):
        second = services.llm_run_request(task=act_task)
    assert first.pk == second.pk and sent == [first.pk]


def test_without_a_provider_a_run_cannot_be_requested(act_task, settings):
    settings.LLM_BASE_URL = ""
    with pytest.raises(services.LlmNotConfigured):
        services.llm_run_request(task=act_task)


def test_unknown_template_fields_render_as_written(act_task):
    prompt = PromptTemplate(
        task=act_task,
        name="X",
        template="Say {utterance} in {language}",
        context_turns=0,
    )
    utterance = Utterance.objects.filter(dialogue__project=act_task.project).first()
    messages = services.prompt_messages(prompt, ACT, utterance, [])
    assert messages[1]["content"] == "Say A: where is it? in {language}"
