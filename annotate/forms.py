"""Forms validate and clean; they never save across models."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from .models import ImportJob, Project
from .transcripts import TranscriptError, format_for


class ImportUploadForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none())
    file = forms.FileField(
        help_text="JSONL (one dialogue per line) or CSV (one utterance per row)."
    )
    format = forms.ChoiceField(
        choices=[("", "From the file name"), *ImportJob.Format.choices], required=False
    )
    update = forms.BooleanField(
        required=False,
        label="Update known dialogues",
        help_text="Replace the text and LLM labels of dialogues already imported, instead of "
        "skipping them. Human labels are only ever added.",
    )

    def __init__(self, *args: Any, projects: QuerySet[Project], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        if upload is not None and not cleaned.get("format"):
            try:
                cleaned["format"] = format_for(upload.name or "")
            except TranscriptError as exc:
                self.add_error("format", exc.message)
        return cleaned


class ApiImportForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(choices=ImportJob.Format.choices, required=False)
    update = forms.BooleanField(required=False)


class IdListField(forms.Field):
    """Every value a field name was posted with, as item ids (values that are not are dropped)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        return [int(v) for v in value or [] if str(v).isdigit()]


class SubmitForm(forms.Form):
    """An annotator's answer: the label and the key that makes resending it safe."""

    label = forms.CharField(max_length=100)
    submission_key = forms.CharField(max_length=100)
    showing = IdListField(
        required=False
    )  # the items the page shows (not to fetch again)


class ShowingForm(forms.Form):
    """Skip, flag: the items the page shows, and a flag's comment."""

    showing = IdListField(required=False)
    comment = forms.CharField(required=False, max_length=2000)


class ItemsForm(forms.Form):
    """Renew, release: the items the page holds."""

    item = IdListField(required=False)


class AdjudicateForm(forms.Form):
    label = forms.CharField(max_length=100)
