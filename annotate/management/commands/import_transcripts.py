from __future__ import annotations

import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotate import services
from annotate.models import Project
from annotate.transcripts import TranscriptError


class Command(BaseCommand):
    help = "Import a JSONL or CSV transcript file into a project (all or nothing)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument(
            "--format", choices=["jsonl", "csv"], help="Default: by extension."
        )
        parser.add_argument(
            "--update",
            action="store_true",
            help="Update dialogues whose id is already known instead of skipping them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {options['project']!r}") from None
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        start = time.perf_counter()
        try:
            with path.open("rb") as stream:
                result = services.transcripts_import(
                    project=project,
                    stream=stream,
                    name=str(path),
                    fmt=options["format"],
                    update=options["update"],
                )
        except TranscriptError as exc:
            raise CommandError(f"{exc}\nNothing was imported.") from None
        seconds = time.perf_counter() - start
        self.stdout.write(
            f"Imported {path} into {project.slug} in {seconds:.1f}s: "
            f"{result.created} created, {result.updated} updated, {result.skipped} skipped; "
            f"{result.utterances} utterances."
        )
