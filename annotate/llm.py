"""The LLM teacher's provider: any OpenAI-compatible chat-completions endpoint.

One call asks one prompt of the bank about one utterance and turns the answer into a
distribution over the task's labels, in order of preference:

1. label-token log-probabilities, where the endpoint returns them (`logprobs` +
   `top_logprobs`): the probability of each label's first token, renormalised;
2. vote shares over `samples` completions (n > 1), when sampling is configured;
3. the verbalised confidence, spread as (confidence on the label, the rest uniform).

The client is synchronous and thread-safe: the labelling service runs calls concurrently on
a thread pool (at most `concurrency` at once), all sharing one rate limiter. Transient
failures (429, 5xx, timeouts, connection errors) are retried with exponential backoff and
jitter, honouring `Retry-After`. This module does no database work.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from .transcripts import spread_confidence


class LlmError(Exception):
    """The endpoint failed for good (after retries, or a 4xx that retrying cannot fix)."""


class MalformedAnswer(Exception):
    """The endpoint answered, but not with one of the task's labels."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class LlmSettings:
    base_url: str
    model: str
    api_key: str = ""
    concurrency: int = 4
    requests_per_second: float = 0.0
    """0: no limit."""
    timeout: float = 60.0
    max_retries: int = 5
    backoff: float = 1.0
    """First retry delay in seconds; doubles each retry (with jitter), capped at 60 s."""
    logprobs: bool = True
    """Ask for token log-probabilities (endpoints that do not support them are asked again without)."""
    samples: int = 1
    temperature: float = 0.0


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False
    )

    def add(
        self,
        *,
        requests: int = 0,
        prompt: int = 0,
        completion: int = 0,
        retries: int = 0,
    ) -> None:
        with self.lock:
            self.requests += requests
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.retries += retries


@dataclass(frozen=True)
class Answer:
    label: str
    confidence: float | None
    distribution: dict[str, float]
    source: str
    """"logprobs", "samples" or "verbalised": how the distribution was obtained."""
    raw: str


class RateLimiter:
    """At most `rate` acquisitions per second across threads (evenly spaced; 0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_slot = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ChatClient:
    """A thread-safe client of `POST {base_url}/chat/completions`."""

    def __init__(
        self, settings: LlmSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        headers = (
            {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        )
        self.http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=settings.timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max(settings.concurrency, 1)),
        )
        self.limiter = RateLimiter(settings.requests_per_second)
        self.usage = Usage()
        self.logprobs = settings.logprobs

    def close(self) -> None:
        self.http.close()

    def complete(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The endpoint's JSON response to `messages`, retrying transient failures."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": 60,
        }
        if self.settings.samples > 1:
            body["n"] = self.settings.samples
            body["temperature"] = max(self.settings.temperature, 0.7)
        if self.logprobs:
            body |= {"logprobs": True, "top_logprobs": 20}
        delay = self.settings.backoff
        for attempt in range(self.settings.max_retries + 1):
            self.limiter.acquire()
            try:
                response = self.http.post("/chat/completions", json=body)
            except (
                httpx.TransportError
            ) as exc:  # timeouts, refused or dropped connections
                error: str = f"{type(exc).__name__}: {exc}"
                wait = delay
            else:
                self.usage.add(requests=1)
                if response.status_code == 200:
                    try:
                        data: dict[str, Any] = response.json()
                    except ValueError:
                        error, wait = "the response body is not JSON", delay
                    else:
                        usage = data.get("usage") or {}
                        self.usage.add(
                            prompt=int(usage.get("prompt_tokens") or 0),
                            completion=int(usage.get("completion_tokens") or 0),
                        )
                        return data
                elif (
                    response.status_code == 400
                    and self.logprobs
                    and "logprob" in response.text
                ):
                    self.logprobs = False  # this endpoint does not do log-probabilities
                    body.pop("logprobs", None)
                    body.pop("top_logprobs", None)
                    continue
                elif response.status_code in RETRY_STATUS:
                    error = f"HTTP {response.status_code}"
                    wait = _retry_after(response) or delay
                else:
                    raise LlmError(
                        f"HTTP {response.status_code}: {response.text[:300]}"
                    )
            if attempt == self.settings.max_retries:
                raise LlmError(f"gave up after {attempt + 1} attempts: {error}")
            self.usage.add(retries=1)
            time.sleep(min(wait, 60.0) * random.uniform(0.8, 1.2))
            delay *= 2
        raise AssertionError("unreachable")

    def ask(self, messages: list[dict[str, str]], labels: list[str]) -> Answer:
        """Ask and turn the answer into a distribution over `labels` (see the module docstring)."""
        data = self.complete(messages)
        choices = data.get("choices") or []
        if not choices:
            raise MalformedAnswer("no choices in the response", json.dumps(data)[:2000])
        texts = [str((c.get("message") or {}).get("content") or "") for c in choices]
        answers = [parse_answer(text, labels) for text in texts]  # or MalformedAnswer
        label, confidence = answers[0]
        if len(answers) > 1:
            votes = Counter(a for a, _ in answers)
            label = max(votes, key=lambda v: (votes[v], -labels.index(v)))
            dist = {v: votes.get(v, 0) / len(answers) for v in labels}
            return Answer(label, dist[label], dist, "samples", texts[0])
        from_logprobs = label_logprobs(choices[0], labels, label)
        if from_logprobs is not None:
            return Answer(label, confidence, from_logprobs, "logprobs", texts[0])
        return Answer(
            label,
            confidence,
            spread_confidence(labels, label, confidence),
            "verbalised",
            texts[0],
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_answer(text: str, labels: list[str]) -> tuple[str, float | None]:
    """(label, confidence) from an answer: `{"label": …, "confidence": …}` or a bare label.

    Case and surrounding punctuation of the label are forgiven; anything else is malformed.
    """
    by_lower = {label.lower(): label for label in labels}
    match = JSON_OBJECT.search(text)
    if match:
        try:
            obj = json.loads(match.group(0))
        except ValueError as exc:
            raise MalformedAnswer(f"invalid JSON in the answer: {exc}", text) from exc
        if not isinstance(obj, dict):
            raise MalformedAnswer("the answer is not a JSON object", text)
        raw_label = str(obj.get("label", "")).strip().lower()
        if raw_label not in by_lower:
            raise MalformedAnswer(f"unknown label {obj.get('label')!r}", text)
        confidence = obj.get("confidence")
        if confidence is not None:
            try:
                confidence = float(confidence)
            except (TypeError, ValueError) as exc:
                raise MalformedAnswer(
                    f"confidence is not a number: {confidence!r}", text
                ) from exc
            if not 0.0 <= confidence <= 1.0 or math.isnan(confidence):
                raise MalformedAnswer(f"confidence outside [0, 1]: {confidence}", text)
        return by_lower[raw_label], confidence
    word = text.strip().strip(".\"'`").lower()
    if word in by_lower:
        return by_lower[word], None
    raise MalformedAnswer("the answer is neither JSON nor a label", text)


LABEL_VALUE = re.compile(r'"label"\s*:\s*"', re.IGNORECASE)


def label_logprobs(
    choice: dict[str, Any], labels: list[str], label: str
) -> dict[str, float] | None:
    """The distribution over `labels` from the top log-probabilities of the token where the
    answer's label starts, or None when the response has none that can be attributed.

    An alternative token counts for the label it begins (case-insensitively); one that could
    begin several labels ("ne" for neutral/negative) cannot be attributed and is left out.
    """
    tokens = ((choice.get("logprobs") or {}).get("content")) or []
    if not tokens:
        return None
    text = "".join(str(t.get("token", "")) for t in tokens)
    match = LABEL_VALUE.search(text)
    offset = match.end() if match else len(text) - len(text.lstrip(" \"'`"))
    position = 0
    for token in tokens:
        piece = str(token.get("token", ""))
        if position + len(piece) > offset:
            break
        position += len(piece)
    else:
        return None
    mass = dict.fromkeys(labels, 0.0)
    for alt in token.get("top_logprobs") or []:
        alt_text = str(alt.get("token", "")).strip().strip("\"'`").lower()
        candidates = [v for v in labels if alt_text and v.lower().startswith(alt_text)]
        if len(candidates) == 1:
            mass[candidates[0]] += math.exp(float(alt.get("logprob", -math.inf)))
    total = sum(mass.values())
    if total <= 0 or mass[label] <= 0:
        return None
    return {value: p / total for value, p in mass.items()}
