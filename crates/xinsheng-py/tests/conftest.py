"""Shared helpers: the repository root and the `xinsheng` CLI the Python results are compared with."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def cli_binary() -> str:
    """The CLI built by the test command (XINSHENG_BIN), else the debug build beside it."""
    binary = os.environ.get("XINSHENG_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "xinsheng")
    if not Path(binary).exists():
        pytest.fail(f"no xinsheng CLI at {binary}: build it (cargo build -p xinsheng-train) or set XINSHENG_BIN")
    return binary


def cli_predict(texts, model=None, extra=()):
    """`xinsheng predict` on `texts` (one per line on stdin): one JSON object per text."""
    args = [cli_binary(), "predict", *(["--model", str(model)] if model else []), *extra]
    done = subprocess.run(args, input="\n".join(texts).encode(), capture_output=True, cwd=ROOT, check=True)
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def review_texts(n):
    """`n` real reviews from the validation split (no blank ones, no newlines)."""
    lines = (ROOT / "data" / "valid.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("\t", 1)[1].strip() for line in lines]
    return [t for t in texts if t][:n]
