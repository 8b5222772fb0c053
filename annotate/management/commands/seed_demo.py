from __future__ import annotations

import secrets
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate import services
from annotate.models import Project, PromptTemplate, Role

DEMO_FILE = settings.BASE_DIR / "demo" / "demo.jsonl"
TASKS = {
    "act": [
        ("inform", "States a fact, an opinion or an answer."),
        ("question", "Asks for information."),
        ("directive", "Asks or tells the listener to do something."),
        (
            "commissive",
            "Commits the speaker to a future action: promises, offers, accepts.",
        ),
    ],
    "sentiment": [
        ("positive", "Happiness or pleasant surprise."),
        ("negative", "Anger, disgust, fear or sadness."),
        ("neutral", "No emotion expressed."),
    ],
}
PROMPTS = {
    "P1": "You are a careful annotator. Read the dialogue so far:\n{context}\n\nLabel the {task} "
    "of the last utterance: {utterance}\nAnswer with one of: {labels}, and your confidence.",
    "P2": "Utterance: {utterance}\nWhich {task} is it? Options: {labels}. "
    'Reply as JSON: {{"label": …, "confidence": …}}.',
    "P3": "As a conversation analyst, classify the {task} of the final turn.\n{context}\n"
    "Final turn: {utterance}\nAllowed labels: {labels}. Give a label and a confidence in [0, 1].",
}
USERS = (
    ("admin", Role.ADMIN, True),
    ("lead", Role.LEAD, False),
    ("annotator", Role.ANNOTATOR, False),
)


class Command(BaseCommand):
    help = "Create the demo project (30 dialogues with LLM labels) and demo users."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--file", type=Path, default=DEMO_FILE)

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = self._create_project()
        with options["file"].open("rb") as stream:
            result = services.transcripts_import(
                project=project, stream=stream, name=str(options["file"])
            )
        self.stdout.write(
            f"Demo project: {result.created} dialogues imported, {result.skipped} already there."
        )
        credentials = self._users(project)
        self.stdout.write(self.style.SUCCESS("Demo users (username / password):"))
        for line in credentials:
            self.stdout.write(f"  {line}")

    @transaction.atomic
    def _create_project(self) -> Project:
        project = services.project_create(
            name="Demo: customer conversations",
            slug="demo",
            description="Thirty short conversations with dialogue-act and sentiment labels "
            "from a three-prompt LLM bank.",
            tasks=TASKS,
        )
        for task in project.tasks.all():
            task.guidelines = (
                "Label the utterance on its own; use the dialogue for context only."
            )
            task.save(update_fields=["guidelines"])
            PromptTemplate.objects.bulk_create(
                PromptTemplate(
                    task=task,
                    name=name,
                    template=template,
                    context_turns=3 if name != "P2" else 0,
                )
                for name, template in PROMPTS.items()
            )
        return project

    def _users(self, project: Project) -> list[str]:
        """Create missing demo users; passwords are kept in DATA_DIR/demo-credentials.txt."""
        path = Path(settings.DATA_DIR) / "demo-credentials.txt"
        saved = (
            dict(line.split(" / ", 1) for line in path.read_text().splitlines())
            if path.exists()
            else {}
        )
        user_model = get_user_model()
        for username, role, is_admin in USERS:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                password = secrets.token_urlsafe(9)
                user = user_model.objects.create_user(
                    username=username,
                    password=password,
                    is_staff=is_admin,
                    is_superuser=is_admin,
                )
                saved[username] = password
            services.membership_set(project=project, user=user, role=role)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{u} / {p}\n" for u, p in saved.items()))
        return [f"{u} / {saved.get(u, '(set before; unchanged)')}" for u, _, _ in USERS]
