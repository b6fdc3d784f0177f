"""The `imunban` command lines of the docs' shell blocks, for tests/repo/test_docs_commands.py and
tests/integration/test_readme_runs.py."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

SHELL_FENCES = ("sh", "bash", "shell", "console")
#: Words after which `imunban` is a name (a package, a queue), not the command.
NOT_THE_COMMAND = ("install", "LPUSH", "--queue", "-Q", "-p")


def shell_blocks(markdown: str) -> Iterator[str]:
    """The text of fenced shell blocks (```sh, ```bash, ...) and of 4-space indented blocks."""
    for fence, body in re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL):
        if fence in SHELL_FENCES:
            yield body
    outside = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    for block in re.findall(r"(?:^\n((?: {4}\S.*\n)+))", outside, flags=re.MULTILINE):
        yield "\n".join(line[4:] for line in block.splitlines())


def imunban_commands(block: str) -> Iterator[list[str]]:
    """The argument lists of every `imunban` (or `.venv/bin/imunban`) invocation in a block of shell lines."""
    for line in block.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()  # a comment starts a word, as in sh (`@TGS#x` is no comment)
        for segment in re.split(r"\s*(?:&&|\|\||[;|&])\s*", line):
            try:
                words = shlex.split(segment)
            except ValueError:
                continue
            for index, word in enumerate(words):
                if word.rsplit("/", 1)[-1] == "imunban" and (index == 0 or words[index - 1] not in NOT_THE_COMMAND):
                    yield words[index + 1 :]
                    break
