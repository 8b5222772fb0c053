"""The README's manage.py commands work as written on a fresh checkout: no .env, nothing
exported, after `make run`'s first steps (migrate, demo)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import dialogue, jsonl

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """Every shell command in the README's code blocks that runs manage.py, as written."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if "manage.py" in command:
                commands.append(command.strip())
    return commands


def test_the_readme_shows_its_commands():
    assert len(readme_commands()) >= 4


def test_the_readme_commands_run_as_written_on_a_fresh_checkout(tmp_path):
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("manage.py", ".venv"):  # the repository as a new user has it
        (work / name).symlink_to(ROOT / name)
    (work / "calls.jsonl").write_bytes(jsonl(dialogue("c1", n_turns=3), dialogue("c2")))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "PARLEY_"))
    }
    env["PARLEY_DATA_DIR"] = str(tmp_path / "var")  # instead of the checkout's own var/
    first_steps = [
        ".venv/bin/python manage.py migrate -v0",
        ".venv/bin/python manage.py seed_demo",
    ]
    for command in first_steps + readme_commands():
        out = subprocess.run(
            ["bash", "-euc", command], cwd=work, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
    exported = (work / "out.jsonl").read_text().splitlines()
    assert len(exported) == 2
