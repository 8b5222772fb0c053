"""Field-by-field checks shared by the JSONL and CSV parsers: labels, confidences, LLM and
human answers, positions, limits, NUL characters. Each bad value raises a located error.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

import learner

from .records import (
    ANSWER_KEYS,
    HUMAN_KEYS,
    HumanAnswer,
    LlmAnswer,
    Located,
    Schema,
    TurnRecord,
)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def parse_time(loc: Located, field: str, value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise loc.error(field, "expected an ISO 8601 date-time string")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise loc.error(field, f"not an ISO 8601 date-time: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def check_label(
    loc: Located, field: str, schema: Schema, task: str, label: object
) -> str:
    if not isinstance(label, str) or not label:
        raise loc.error(field, "expected a label name")
    if label not in schema[task]:
        allowed = ", ".join(schema[task])
        raise loc.error(
            field, f"unknown label {label!r} for task '{task}' (one of: {allowed})"
        )
    return label


def check_confidence(loc: Located, field: str, value: object) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
        raise loc.error(field, f"confidence must be a number in [0, 1], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def spread_confidence(
    labels: list[str], label: str, confidence: float | None
) -> dict[str, float]:
    """A verbalised answer as a distribution: its confidence on the label, the rest uniform."""
    return dict(
        zip(labels, learner.spread_confidence(labels, label, confidence), strict=True)
    )


def parse_distribution(
    loc: Located, field: str, schema: Schema, task: str, value: object
) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise loc.error(field, "expected an object mapping labels to probabilities")
    for label, prob in value.items():
        check_label(loc, f"{field}.{label}", schema, task, label)
        if not _is_number(prob) or prob < 0:
            raise loc.error(
                f"{field}.{label}", f"expected a non-negative number, got {prob!r}"
            )
    total = float(sum(value.values()))
    if total <= 0:
        raise loc.error(field, "probabilities sum to zero")
    # Renormalise only what is off by more than rounding, so that exported values re-import
    # bit for bit.
    scale = 1.0 if abs(total - 1.0) <= 1e-6 else 1.0 / total
    return {label: float(value.get(label, 0.0)) * scale for label in schema[task]}


def _parse_answer(
    loc: Located,
    task_field: str,
    index: int | None,
    schema: Schema,
    task: str,
    value: object,
) -> LlmAnswer:
    """One LLM answer in any of its shapes: a label, {label, confidence}, {distribution}.

    The hot loop of an import (one call per utterance × prompt): field names for the error
    messages are only built when there is an error.
    """

    def where(key: str = "") -> str:
        field = task_field if index is None else f"{task_field}[{index}]"
        return f"{field}.{key}" if key else field

    labels = schema[task]
    if isinstance(value, str):
        if value not in labels:
            check_label(loc, where(), schema, task, value)
        return LlmAnswer("", "", value, None, spread_confidence(labels, value, None))
    if not isinstance(value, dict):
        raise loc.error(
            where(), "expected a label, an object or a list of per-prompt answers"
        )
    if not ANSWER_KEYS.issuperset(value):
        raise loc.error(where(sorted(set(value) - ANSWER_KEYS)[0]), "unknown key")
    prompt = value.get("prompt", "")
    model = value.get("model", "")
    if not isinstance(prompt, str) or len(prompt) > 50:
        raise loc.error(where("prompt"), "expected a short string")
    if not isinstance(model, str) or len(model) > 100:
        raise loc.error(where("model"), "expected a short string")
    confidence = value.get("confidence")
    if confidence is not None:
        if not _is_number(confidence) or not 0.0 <= confidence <= 1.0:
            check_confidence(loc, where("confidence"), confidence)  # raises
        confidence = float(confidence)
    label = value.get("label")
    if "label" in value and label not in labels:
        check_label(loc, where("label"), schema, task, label)  # raises
    if "distribution" in value:
        dist = parse_distribution(
            loc, where("distribution"), schema, task, value["distribution"]
        )
        if label is None:
            label = max(dist, key=dist.__getitem__)
    elif label is not None:
        dist = spread_confidence(labels, label, confidence)
    else:
        raise loc.error(where("label"), "missing: give a label or a distribution")
    return LlmAnswer(prompt, model, label, confidence, dist)


def parse_llm(
    loc: Located, field: str, schema: Schema, value: object
) -> dict[str, list[LlmAnswer]]:
    if not isinstance(value, dict):
        raise loc.error(field, "expected an object keyed by task name")
    result: dict[str, list[LlmAnswer]] = {}
    for task, answer in value.items():
        task_field = f"{field}.{task}"
        if task not in schema:
            raise loc.error(
                task_field, f"unknown task (project tasks: {', '.join(schema)})"
            )
        if isinstance(answer, list):
            if not answer:
                raise loc.error(task_field, "empty list of answers")
            answers = [
                _parse_answer(loc, task_field, i, schema, task, item)
                for i, item in enumerate(answer)
            ]
            sources = {(a.prompt, a.model) for a in answers}
            if len(sources) != len(answers):
                raise loc.error(
                    task_field, "two answers from the same prompt and model"
                )
        else:
            answers = [_parse_answer(loc, task_field, None, schema, task, answer)]
        result[task] = answers
    return result


def _parse_human_one(
    loc: Located, field: str, schema: Schema, task: str, value: object
) -> HumanAnswer:
    if isinstance(value, str):
        return HumanAnswer(check_label(loc, field, schema, task, value), "", None)
    if not isinstance(value, dict):
        raise loc.error(field, "expected a label or an object with a label")
    unknown = set(value) - HUMAN_KEYS
    if unknown:
        raise loc.error(f"{field}.{sorted(unknown)[0]}", "unknown key")
    if "label" not in value:
        raise loc.error(f"{field}.label", "missing")
    label = check_label(loc, f"{field}.label", schema, task, value["label"])
    annotator = value.get("annotator") or ""
    if not isinstance(annotator, str) or len(annotator) > 150:
        raise loc.error(
            f"{field}.annotator", "expected a name of at most 150 characters"
        )
    created_at = parse_time(loc, f"{field}.created_at", value.get("created_at"))
    return HumanAnswer(label, annotator, created_at)


def parse_human(
    loc: Located, field: str, schema: Schema, value: object
) -> dict[str, list[HumanAnswer]]:
    if not isinstance(value, dict):
        raise loc.error(field, "expected an object keyed by task name")
    result: dict[str, list[HumanAnswer]] = {}
    for task, answer in value.items():
        task_field = f"{field}.{task}"
        if task not in schema:
            raise loc.error(
                task_field, f"unknown task (project tasks: {', '.join(schema)})"
            )
        items = answer if isinstance(answer, list) else [answer]
        result[task] = [
            _parse_human_one(
                loc,
                f"{task_field}[{i}]" if isinstance(answer, list) else task_field,
                schema,
                task,
                item,
            )
            for i, item in enumerate(items)
        ]
    return result


def check_positions(loc: Located, field: str, turns: list[TurnRecord]) -> None:
    """Positions must be 0..n-1, each once, in any order."""
    seen: set[int] = set()
    for i, turn in enumerate(turns):
        if turn.position in seen:
            raise loc.error(
                f"{field}[{i}].position", f"duplicate position {turn.position}"
            )
        seen.add(turn.position)
    for expected in range(len(turns)):
        if expected not in seen:
            raise loc.error(
                field,
                f"position {expected} is missing (positions run 0..{len(turns) - 1})",
            )
    turns.sort(key=lambda t: t.position)


def check_text_length(
    loc: Located, field: str, text: str, max_chars: int | None
) -> None:
    if max_chars is not None and len(text) > max_chars:
        raise loc.error(
            field,
            f"{len(text):,} characters, more than the limit of {max_chars:,} "
            "(PARLEY_IMPORT_MAX_UTTERANCE_CHARS)",
        )


def check_turn_count(loc: Located, field: str, n: int, max_turns: int | None) -> None:
    if max_turns is not None and n > max_turns:
        raise loc.error(
            field,
            f"more than the limit of {max_turns:,} turns per dialogue "
            "(PARLEY_IMPORT_MAX_TURNS); split the dialogue",
        )


def nul_path(value: object, path: str) -> str | None:
    """The JSON path of the first string (or key) holding a NUL character, if any.

    PostgreSQL cannot store NUL in text; a `\u0000` escape is the only way JSON brings one.
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored; remove it"
