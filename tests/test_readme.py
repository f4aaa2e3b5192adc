"""The README's promises: it opens with the two commands, and its console examples work as shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from oneedit.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_two_commands():
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert len(blocks) >= 2
    first, second = blocks[0].strip(), blocks[1].strip()
    assert text.index("```bash") < 30  # right after the title
    for cmd in (first, second):
        assert "pip install torch==2.13.0 && " in cmd and cmd.index("torch==2.13.0") < cmd.index("-e ")
    assert first.endswith("oneedit demo") and "pytest" in second
    # .ci/run runs the same command (pip made quiet, pytest's exit code 5 handled).
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    setup = next(line for line in ci if line.startswith("python3 -m venv")).split(" || ")[0]
    test = next(line for line in ci if "-m pytest" in line)
    assert f"{setup} && {test}".replace("install -q ", "install ") == second

MODEL_COMMANDS = ("model ", "eval ")


def test_model_examples_run(copy_ws, tmp_path, monkeypatch):
    """The model examples, on the test suite's knowledge model (a subset of the shipped KG)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    lines = [line for line in re.findall(r"^\$ oneedit (.+)$", README.read_text(), re.M)
             if line.startswith(MODEL_COMMANDS)]
    assert len(lines) >= 6
    outputs = []
    for line in lines:
        res = runner.invoke(app, shlex.split(line) + ["-w", str(copy_ws)])
        assert res.exit_code == 0, (line, res.output)
        outputs.append(res.output)
    assert "Paris" in outputs[0] and "Rome" in outputs[2]
    assert (tmp_path / "eval-report" / "metrics.png").is_file()


def test_console_examples_run_on_the_shipped_kg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", "-w", str(ws), "--no-model"]).exit_code == 0
    lines = [line for line in re.findall(r"^\$ oneedit (.+)$", README.read_text(), re.M)
             if not line.startswith(MODEL_COMMANDS)]
    assert len(lines) >= 8
    for line in lines:
        args = shlex.split(line)
        if args[:2] == ["kg", "synth"]:
            args[args.index("--triples") + 1] = "3000"  # same command, smaller world
        else:
            args += ["-w", str(ws)]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (line, res.output)
    # After the examples: Australia's capital was moved and both changes reverted.
    res = runner.invoke(app, ["kg", "query", "-s", "australia", "-r", "capital", "--json", "-w", str(ws)])
    assert '"canberra"' in res.stdout
    assert (tmp_path / "world.ttl").stat().st_size > 100_000
