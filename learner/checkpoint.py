"""Save and load a trained student as a directory Hugging Face can load as it is.

    directory/
      config.json, model.safetensors        the AutoModelForSequenceClassification
      tokenizer.json, vocab.txt, …          its tokenizer
      parley.json                           Parley's record: format, version, StudentConfig,
                                            training config, label set, metrics

`AutoModelForSequenceClassification.from_pretrained(directory)` gives the same model (its
config carries id2label); `load(directory)` gives back the `Student` with its record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .model import Student, StudentConfig, resolve_device

FORMAT = "parley-student/1"
RECORD = "parley.json"


def save(
    student: Student,
    directory: str | os.PathLike[str],
    *,
    version: int | str,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write `student` to `directory` (created; replaced whole if it exists).

    The files are written to a sibling temporary directory first and moved into place, so a
    crash mid-save never leaves a half-written checkpoint where a model is expected.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    student.encoder.save_pretrained(staging)
    student.tokenizer.save_pretrained(staging)
    record = {
        "format": FORMAT,
        "version": version,
        "student": dataclasses.asdict(student.config),
        "labels": list(student.config.labels),
        "training": training or {},
        "metrics": metrics or {},
    }
    (staging / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
    if target.exists():
        old = target.with_name(f".{target.name}-old")
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)
    return target


def load(
    directory: str | os.PathLike[str], *, device: str = "auto"
) -> tuple[Student, dict[str, Any]]:
    """The student saved in `directory` and its record (version, configs, metrics)."""
    path = Path(directory)
    record_path = path / RECORD
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a Parley student checkpoint (no {RECORD})"
        )
    record = json.loads(record_path.read_text())
    if record.get("format") != FORMAT:
        raise ValueError(
            f"{path}: unsupported checkpoint format {record.get('format')!r}"
        )
    fields = {f.name for f in dataclasses.fields(StudentConfig)}
    config = StudentConfig(
        **{k: v for k, v in record["student"].items() if k in fields}
    )
    config.local_files_only = True  # a checkpoint is local by definition
    student = Student(config, path=str(path)).to(resolve_device(device))
    student.eval()
    return student, record
