from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from annotate import services


class Command(BaseCommand):
    help = "Create a project with its label tasks, e.g. --task act=inform,question,directive."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", help="Display name (default: the slug).")
        parser.add_argument(
            "--task",
            action="append",
            default=[],
            metavar="NAME=LABEL,LABEL,…",
            help="A label task and its labels, in keyboard order. Repeat for several tasks.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tasks: dict[str, list[str]] = {}
        for spec in options["task"]:
            name, _, labels = spec.partition("=")
            values = [v.strip() for v in labels.split(",") if v.strip()]
            if not name or not values:
                raise CommandError(f"--task {spec!r}: expected NAME=LABEL,LABEL,…")
            tasks[name.strip()] = values
        try:
            project = services.project_create(
                name=options["name"] or options["slug"],
                slug=options["slug"],
                tasks=tasks,
            )
        except (IntegrityError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created project {project.slug} with tasks: {', '.join(tasks) or '-'}"
        )
