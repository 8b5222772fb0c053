from __future__ import annotations

import sys
from argparse import ArgumentParser
from collections.abc import Iterator
from typing import Any, cast

from django.core.management.base import BaseCommand, CommandError

from annotate.exports import export_response
from annotate.models import Project


class Command(BaseCommand):
    help = "Export a project's dialogues with LLM labels, human labels and predictions."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        parser.add_argument(
            "--output", "-o", help="File to write (default: standard output)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {options['project']!r}") from None
        response = export_response(project, options["format"])
        out = open(options["output"], "wb") if options["output"] else sys.stdout.buffer  # noqa: SIM115
        chunks = cast(Iterator[bytes], response.streaming_content)
        try:
            for chunk in chunks:
                out.write(chunk)
        finally:
            if options["output"]:
                out.close()
