"""The student on ONNX Runtime: fast CPU inference without PyTorch (issue 15).

A checkpoint directory (`checkpoint.save`) gets, once, an `onnx/` folder beside its weights:

    onnx/model.onnx         fp32: inputs input_ids, attention_mask, token_type_ids (batch ×
                            sequence); outputs logits (batch × C) and embedding (batch × H,
                            the last hidden layer mean-pooled over the tokens, unit length)
    onnx/model.int8.onnx    the same with int8 weights (ONNX Runtime's dynamic quantisation)

`export_onnx` (needs torch) writes them; `OnnxStudent` reads them with onnxruntime and the
`tokenizers` library only, so a web process can answer predictions without loading torch.
`ensure_onnx` exports if needed and, if the export fails, logs why and returns None: callers
then use PyTorch (`training.predict_with_embeddings`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import Example, input_texts

logger = logging.getLogger(__name__)

FOLDER = "onnx"
FP32 = "model.onnx"
INT8 = "model.int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_path(directory: str | os.PathLike[str], *, quantized: bool = True) -> Path:
    return Path(directory) / FOLDER / (INT8 if quantized else FP32)


def export_onnx(directory: str | os.PathLike[str], *, opset: int = 17) -> Path:
    """Export the student saved in `directory` to `directory/onnx/` (fp32 and int8); returns
    the folder. Written to a sibling temporary folder and moved into place: a crash never
    leaves half a model where one is expected."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .checkpoint import load

    student, _ = load(directory, device="cpu")
    target = Path(directory) / FOLDER
    staging = Path(tempfile.mkdtemp(prefix=".onnx-", dir=directory))
    try:
        # Two inputs of different lengths: the trace sees padding, so the exported graph
        # always applies the attention mask (a trace of one unpadded input may drop it).
        sample = student.encode(
            [
                Example("d", 0, "A", "hello there", context=(("B", "hi"),)),
                Example(
                    "d", 1, "B", "a longer answer, to pad the first one", context=()
                ),
            ]
        )
        names = [name for name in INPUTS if name in sample]
        axes = {name: {0: "batch", 1: "sequence"} for name in names}
        with torch.inference_mode(), warnings.catch_warnings():
            # The TorchScript exporter's tracer and deprecation notes are expected here; the
            # tests check the exported graph against PyTorch, padding included.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _WithEmbedding(student.encoder, names),
                tuple(sample[name] for name in names),
                str(staging / FP32),
                input_names=names,
                output_names=["logits", "embedding"],
                dynamic_axes={
                    **axes,
                    "logits": {0: "batch"},
                    "embedding": {0: "batch"},
                },
                opset_version=opset,
                dynamo=False,
            )
        # Per-channel scales: on an act student, macro-F1 −0.29 point against fp32 where
        # one scale per tensor lost 1.07 (docs/api.md), at the same speed.
        quantize_dynamic(
            str(staging / FP32),
            str(staging / INT8),
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def ensure_onnx(directory: str | os.PathLike[str]) -> Path | None:
    """`directory/onnx/`, exported now if missing; None (and the reason logged, and kept in
    `onnx.failed` so that it is not tried again) when the export fails."""
    target = Path(directory) / FOLDER
    failed = Path(directory) / f"{FOLDER}.failed"
    if (target / INT8).is_file() and (target / FP32).is_file():
        return target
    if failed.exists():
        return None
    try:
        return export_onnx(directory)
    except Exception as error:  # any failure falls back to PyTorch, with the reason
        reason = f"{type(error).__name__}: {error}"
        logger.warning(
            "ONNX export of %s failed, PyTorch is used instead: %s", directory, reason
        )
        failed.write_text(reason + "\n")
        return None


class _WithEmbedding:
    """A torch module (built lazily: this file imports without torch) returning the logits
    and the mean-pooled, unit-length last hidden layer."""

    def __new__(cls, encoder: Any, names: list[str]) -> Any:
        import torch

        class Module(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(
                self, *inputs: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
                kwargs = dict(zip(names, inputs, strict=True))
                out = self.encoder(**kwargs, output_hidden_states=True)
                mask = kwargs["attention_mask"].unsqueeze(-1).float()
                pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1)
                return out.logits, torch.nn.functional.normalize(pooled, dim=-1)

        return Module().eval()


class OnnxStudent:
    """A saved student on ONNX Runtime: `predict(examples)` → (probabilities, embeddings),
    like `training.predict_with_embeddings`, without torch."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        quantized: bool = True,
        threads: int = 0,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        path = Path(directory)
        record = json.loads((path / "parley.json").read_text())
        config = record["student"]
        self.directory = path
        self.labels: list[str] = list(record["labels"])
        self.version = record.get("version")
        self.context_turns = int(config.get("context_turns", 1))
        self.mark_speakers = bool(config.get("mark_speakers", True))
        self.max_length = int(config.get("max_length", 64))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        special = json.loads((path / "tokenizer_config.json").read_text())
        sep = special.get("sep_token")
        self.sep = f" {sep} " if isinstance(sep, str) and sep else " | "
        self.tokenizer.enable_truncation(
            self.max_length, strategy="longest_first", direction="right"
        )
        pad = special.get("pad_token") or "[PAD]"
        self.tokenizer.enable_padding(
            pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad
        )
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(onnx_path(path, quantized=quantized)),
            options,
            providers=["CPUExecutionProvider"],
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """Token ids, attention mask and segment ids of a batch, padded to its longest."""
        pairs = [
            input_texts(
                ex,
                context_turns=self.context_turns,
                mark_speakers=self.mark_speakers,
                sep=self.sep,
            )
            for ex in examples
        ]
        if any(second for _, second in pairs):
            encodings = self.tokenizer.encode_batch(pairs)
        else:
            encodings = self.tokenizer.encode_batch([first for first, _ in pairs])
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array(
                [e.attention_mask for e in encodings], dtype=np.int64
            ),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.inputs}

    def predict(
        self, examples: Sequence[Example], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) probabilities and (N, H) embeddings, in the order of `examples`; inputs
        sorted by length into batches (less padding)."""
        n_context = self.context_turns

        def rough_length(i: int) -> int:
            context = examples[i].context[-n_context:] if n_context else ()
            return len(examples[i].text) + sum(len(text) for _, text in context)

        order = sorted(range(len(examples)), key=rough_length)
        probabilities = np.zeros((len(examples), len(self.labels)), dtype=np.float32)
        embeddings: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            logits, pooled = self.session.run(
                None, self.encode([examples[i] for i in index])
            )
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities[index] = shifted / shifted.sum(axis=1, keepdims=True)
            if embeddings is None:
                embeddings = np.zeros((len(examples), pooled.shape[1]), np.float32)
            embeddings[index] = pooled
        if embeddings is None:
            embeddings = np.zeros((0, 0), dtype=np.float32)
        return probabilities, embeddings
