"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the tests.

It labels an utterance "question" when it ends with "?" and "inform" otherwise, with
confidence 0.9 (or from `rule`), and can misbehave on demand: `faults` is a list consumed one
request at a time ("429", "500", "malformed", "bad-json", "slow", "400"), `always` applies a
fault to every request, and `logprobs` can be refused (HTTP 400) like some servers do.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Rule = Callable[[str], tuple[str, float]]


def default_rule(utterance: str) -> tuple[str, float]:
    return ("question", 0.9) if utterance.rstrip().endswith("?") else ("inform", 0.9)


class FakeLlm:
    def __init__(self, rule: Rule = default_rule, *, slow_s: float = 2.0) -> None:
        self.rule = rule
        self.slow_s = slow_s
        self.faults: list[str] = []
        self.always: str | None = None
        self.refuse_logprobs = False
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeLlm:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self) -> str | None:
        with self.lock:
            if self.faults:
                return self.faults.pop(0)
            return self.always

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if self.refuse_logprobs and body.get("logprobs"):
            return 400, {}, b'{"error": {"message": "logprobs are not supported"}}'
        fault = self._next_fault()
        if fault == "429":
            return (
                429,
                {"Retry-After": "0.05"},
                b'{"error": {"message": "rate limited"}}',
            )
        if fault == "500":
            return 500, {}, b'{"error": {"message": "internal"}}'
        if fault == "400":
            return 400, {}, b'{"error": {"message": "bad request"}}'
        if fault == "bad-json":
            return 200, {}, b"{not json"
        if fault == "slow":
            time.sleep(self.slow_s)
        user = body["messages"][-1]["content"]
        match = re.search(
            r"(?:^|\n)(?:Utterance|Final turn|Label): ?(?:\w+: )?(.*)", user
        )
        utterance = match.group(1) if match else user
        label, confidence = self.rule(utterance)
        content = (
            "I think it is a statement."
            if fault == "malformed"
            else json.dumps({"label": label, "confidence": confidence})
        )
        choices = []
        for _ in range(int(body.get("n") or 1)):
            choice: dict[str, Any] = {
                "index": len(choices),
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
            if body.get("logprobs") and fault != "malformed":
                choice["logprobs"] = {"content": _tokens(label, confidence)}
            choices.append(choice)
        data = {
            "id": "fake",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": len(user.split()), "completion_tokens": 12},
        }
        return 200, {}, json.dumps(data).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                with fake.lock:
                    fake.requests.append(body)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    status, headers, payload = fake.answer(body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _tokens(label: str, confidence: float) -> list[dict[str, Any]]:
    """Token log-probabilities of `{"label": "<label>", …}` with alternatives at the label."""
    others = {"question": "inform", "inform": "question"}
    alt = others.get(label, "inform")
    pieces = [
        '{"',
        "label",
        '":',
        ' "',
        label,
        '",',
        ' "',
        "confidence",
        '":',
        f" {confidence}",
        "}",
    ]
    out = []
    for piece in pieces:
        top = [{"token": piece, "logprob": 0.0}]
        if piece == label:
            top = [
                {"token": label, "logprob": math.log(0.8)},
                {"token": alt, "logprob": math.log(0.15)},
                {"token": "Sure", "logprob": math.log(0.05)},
            ]
        out.append({"token": piece, "logprob": top[0]["logprob"], "top_logprobs": top})
    return out
