"""`lmforge --help` and `lmforge tokenizer ...` start without torch or the other rooms.

Each case runs in a fresh interpreter (this test process has long imported torch): a driver
calls the command line and then reports which modules were loaded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.cli import COMMAND_MODULES, COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"

DRIVER = """
import json, sys
from lmforge.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help exits
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }


def _run(*argv: str) -> tuple[int, set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *argv],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), proc.stdout


def _rooms_loaded(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] == "torch"} | {
        m for m in COMMAND_MODULES if m in modules
    }


def test_help_imports_no_torch_and_no_room() -> None:
    code, modules, out = _run("--help")
    assert code == 0
    assert "torch" not in modules
    assert _rooms_loaded(modules) == set()
    for name, _, help_text in COMMANDS:
        assert name in out and help_text in out


def test_tokenizer_commands_import_no_torch(tmp_path: Path, shared_data: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("hello world\n\nsecond line.\n", "utf-8")
    gpt2 = str(shared_data / "tiktoken" / "gpt2.tiktoken")
    code, modules, out = _run("tokenizer", "encode", "--tokenizer", gpt2, str(text))
    assert code == 0
    assert out == "31373 995\n\n12227 1627 13\n"
    assert _rooms_loaded(modules) == {"lmforge.tokenizer.cli"}
    for argv in (("tokenizer", "--help"), ("tokenizer", "info", "--tokenizer", gpt2)):
        code, modules, _ = _run(*argv)
        assert code == 0 and _rooms_loaded(modules) == {"lmforge.tokenizer.cli"}


def test_python_m_lmforge_with_importtime() -> None:
    """The documented entry point: `python -X importtime -m lmforge --help` names no torch."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lmforge", "--help"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "usage: lmforge" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "lmforge.cli" in imported
    assert not {m for m in imported if m.split(".")[0] == "torch"}


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_command_table_matches_each_room(module: str) -> None:
    """`lmforge --help` shows the table in lmforge/cli.py: it must name exactly the commands
    each room registers, with the room's own help (update COMMANDS when a room changes)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module).register(sub)
    registered = [(a.dest, a.help) for a in sub._choices_actions]
    assert registered == [(name, h) for name, m, h in COMMANDS if m == module]


def test_unknown_command_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    from lmforge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "tokenizer" in err
