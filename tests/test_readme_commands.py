"""The README's command lines parse as written, and path options work in both spellings.

Every `pytest`/`sdperf` line in the README's code blocks and inline code is run in a form
that parses everything and runs nothing: pytest lines with `--collect-only` from the
repository root, sdperf lines through the command's own parser. An example that stops
parsing fails here, not on a user's board.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, builtin_model_path

README = REPO / "README.md"
# Words in the README's examples that stand for a user's own model folder, profile, locks, count.
MODEL_PLACEHOLDER = re.compile(r"/srv/models/[\w.-]+|\$SDPERF_MODEL")
PLACEHOLDERS = {"<profile>": "pi5", "BASE,HEAD": "constraints.txt,constraints.txt", "N": "2"}
PROGRAMS = ("pytest", "sdperf", ".venv/bin/sdperf", "python -m sdperf", "python -m pytest")


def readme_command_lines() -> list[str]:
    """Command lines in fenced blocks and in inline code, comments dropped, `[--opt]` kept as `--opt`."""
    text = README.read_text(encoding="utf-8")
    fenced = [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for line in block.splitlines()]
    inline = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = []
    for line in fenced + inline:
        line = re.sub(r"\s+#.*$", "", line).strip()
        line = re.sub(r"\[(--[^\]]+)\]", r"\1", line)
        if line.startswith(tuple(f"{program} " for program in PROGRAMS)):
            lines.append(line)
    return sorted(set(lines))


def split_program(line: str) -> tuple[str, list[str]]:
    words = shlex.split(line)
    if words[0] == "python":
        return words[2], words[3:]
    return Path(words[0]).name, words[1:]


def pytest_lines() -> list[str]:
    return [line for line in readme_command_lines() if split_program(line)[0] == "pytest"]


def sdperf_lines() -> list[str]:
    return [line for line in readme_command_lines() if split_program(line)[0] == "sdperf"]


def collect_only(arguments: list[str], cwd: Path = REPO, quiet: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments, "--collect-only", *(["-q"] if quiet else [])],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def with_real_values(arguments: list[str]) -> list[str]:
    arguments = [PLACEHOLDERS.get(word, word) for word in arguments]
    if not any(MODEL_PLACEHOLDER.fullmatch(word) for word in arguments):
        return arguments
    folder = str(builtin_model_path("tiny-sd15"))
    return [folder if MODEL_PLACEHOLDER.fullmatch(word) else word for word in arguments]


def test_the_readme_quotes_commands_of_both_programs() -> None:
    # Guards the extraction itself: an empty list would make the tests below pass vacuously.
    assert len(pytest_lines()) >= 4 and len(sdperf_lines()) >= 8, readme_command_lines()


@pytest.mark.parametrize("line", pytest_lines(), ids=str)
def test_readme_pytest_line_collects(line: str) -> None:
    done = collect_only(with_real_values(split_program(line)[1]))
    assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "rootdir: " not in done.stdout or f"rootdir: {REPO}" in done.stdout


@pytest.mark.parametrize("line", sdperf_lines(), ids=str)
def test_readme_sdperf_line_parses(line: str) -> None:
    from sdperf.cli.main import _parser

    arguments = with_real_values(split_program(line)[1])
    if len(arguments) == 1:
        arguments = [*arguments, "--help"]  # a command named in prose: it must exist
    try:
        parsed, rest = _parser().parse_known_args(arguments)
    except SystemExit as stop:
        if stop.code == 0 and arguments[-1] == "--help":
            return
        pytest.fail(f"{line}: sdperf's parser exited with {stop.code}")
    if getattr(parsed, "passes_unknown", False):  # `sdperf ab`: the rest goes to pytest
        done = collect_only(rest)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    else:
        assert rest == [], f"{line}: sdperf does not take {rest}"


@pytest.mark.parametrize("where", ["root", "perf"])
def test_path_options_as_separate_arguments_keep_the_repository_root(where: str, tmp_path: Path) -> None:
    # pytest picks its rootdir before it knows the plugin's options: an existing folder after
    # `--sdperf-model` used to become the rootdir, losing pyproject.toml (and collecting tests/).
    markdown = tmp_path / "summary.md"
    markdown.write_text("")
    paths = {
        "--sdperf-model": str(builtin_model_path("tiny-sd15")),
        "--sdperf-save-images": str(tmp_path),
        "--sdperf-markdown": str(markdown),
        "--sdperf-history": str(tmp_path / "history"),
    }
    (tmp_path / "history").mkdir()
    cwd = REPO if where == "root" else REPO / "perf"
    for spelling in ([word for pair in paths.items() for word in pair], [f"{o}={v}" for o, v in paths.items()]):
        done = collect_only(["-m", "pi5", *spelling], cwd=cwd, quiet=False)
        assert done.returncode == 0, f"{spelling} from {cwd}:\n{(done.stdout + done.stderr)[-3000:]}"
        assert f"rootdir: {REPO}\nconfigfile: pyproject.toml\n" in done.stdout, done.stdout[:2000]
        assert "<Dir tests>" not in done.stdout, f"{spelling} from {cwd} collected the suite's own tests"
