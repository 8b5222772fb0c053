"""Downloads, for the browser and the API alike: the corpus streamed as JSONL or CSV, and the
active student as a zipped Hugging Face model directory."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from django.http import Http404, StreamingHttpResponse

from . import selectors
from .models import LabelTask, ModelVersion, Project
from .transcripts import csv_writer_line, dialogue_to_csv_rows, dialogue_to_json


def export_response(project: Project, fmt: str) -> StreamingHttpResponse:
    """The project's corpus as a streamed JSONL or CSV download."""
    if fmt == "jsonl":
        body: Iterator[str] = (
            dialogue_to_json(record, predictions) + "\n"
            for record, predictions in selectors.transcript_records(project=project)
        )
        content_type = "application/x-ndjson; charset=utf-8"
    elif fmt == "csv":
        body = _csv_lines(project)
        content_type = "text/csv; charset=utf-8"
    else:
        raise Http404("Unknown export format.")
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{project.slug}.{fmt}"'
    return response


def _csv_lines(project: Project) -> Iterator[str]:
    header = selectors.export_csv_header(project=project)
    yield csv_writer_line(header)
    for record, _ in selectors.transcript_records(project=project):
        for row in dialogue_to_csv_rows(record, header):
            yield csv_writer_line(row)


def student_archive(version: ModelVersion, name: str, *, kind: str = "hf") -> IO[bytes]:
    """The version's student as a zip (under `name/`), spooled to a temporary file (a
    FileResponse closes, and so deletes, it once sent).

    `kind`: "hf", the Hugging Face model directory (loads with `from_pretrained`); "onnx" or
    "onnx-int8", the ONNX model (`model.onnx`, fp32 or int8 weights; inputs input_ids,
    attention_mask, token_type_ids; outputs logits and embedding) with the tokenizer and
    parley.json (the label order, the input format)."""
    directory = Path(version.artifact_path) / "full"
    archive = tempfile.TemporaryFile()  # noqa: SIM115
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            is_onnx = relative.parts[0] in ("onnx", "onnx.failed")
            if (
                not path.is_file()
                or is_onnx
                or (kind != "hf" and path.suffix == ".safetensors")
            ):
                continue
            zf.write(path, f"{name}/{relative}")
        if kind != "hf":
            onnx = (
                directory
                / "onnx"
                / ("model.int8.onnx" if kind == "onnx-int8" else "model.onnx")
            )
            zf.write(onnx, f"{name}/model.onnx")
    archive.seek(0)
    return archive


def onnx_exported(version: ModelVersion) -> bool:
    """Whether the version's student has its ONNX files (the worker exports at scoring)."""
    return (Path(version.artifact_path) / "full" / "onnx" / "model.int8.onnx").is_file()


def active_student(task: LabelTask) -> ModelVersion | None:
    """The task's active model version, if its student is still on disk."""
    version = ModelVersion.objects.filter(task=task, is_active=True).first()
    if version is None or not (Path(version.artifact_path) / "full").is_dir():
        return None
    return version
