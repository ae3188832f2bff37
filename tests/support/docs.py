"""The docs' examples as a user copies them: fenced blocks, their shell commands, files named by a block."""

from __future__ import annotations

import re
from pathlib import Path

from support.paths import REPO


def doc_files(page: str, folder: Path, under: str = "") -> dict[str, Path]:
    """Write every block of ``docs/<page>`` fenced as ```` ```lang path ```` whose path starts
    with ``under`` into ``folder`` (as that path); path -> written file."""
    text = (REPO / "docs" / page).read_text()
    files = {}
    for path, body in re.findall(r"^```\w+ ([\w./-]+)\n(.*?)^```", text, flags=re.S | re.M):
        if not path.startswith(under):
            continue
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
        files[path] = target
    return files


def fenced_blocks(path: Path, lang: str) -> list[str]:
    """The bodies of the ```<lang> blocks of a Markdown file, in order."""
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def shell_commands(block: str) -> list[str]:
    """A shell block's commands: backslash continuations joined, comments and blank lines dropped.

    A heredoc (``<<'EOF'`` ... ``EOF``) stays one command, with its body."""
    commands: list[str] = []
    heredoc: str | None = None
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        if heredoc is not None:
            commands[-1] += "\n" + line
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        commands.append(text)
        if found := re.search(r"<<-?'?(\w+)'?", text):
            heredoc = found.group(1)
    return commands
