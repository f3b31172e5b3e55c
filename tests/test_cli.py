"""The ``fftconv`` command line, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "fftconv"


def run(*args: str) -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fftconv.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=120)


def test_plan_from_flags():
    out = run("plan", "--filters", "1", "--kernel-support", "8191", "--corr",
              "--input-shape", "4,1048576,1")
    assert out.returncode == 0, out.stderr
    assert "Plan: fft" in out.stdout and "direct" in out.stdout
    assert "(4, 1040386, 1)" in out.stdout  # valid output shape


def test_plan_from_json_file(tmp_path):
    layer = {"filters": 64, "kernel_support": 9, "corr": True, "strides_down": 2,
             "padding": "same_zeros", "data_format": "channels_first"}
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(layer))
    out = run("plan", "--layer", str(path), "--input-shape", "32,64,4096")
    assert out.returncode == 0, out.stderr
    assert "candidates" in out.stdout and "(32, 64, 2048)" in out.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--filters", "1", "--input-shape", "1,100,1"], "`kernel_support` is required"),
    (["--filters", "1", "--kernel-support", "9", "--padding", "same", "--input-shape",
      "1,100,1"], "`padding`"),
    (["--filters", "1", "--kernel-support", "9", "--input-shape", "1,4,1"], "too short"),
    (["--filters", "1", "--kernel-support", "9", "--input-shape", "1,100,1", "--config",
      "/nonexistent.toml"], "/nonexistent.toml"),
])
def test_plan_errors(args, message):
    out = run("plan", *args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_tune_writes_a_loadable_config(tmp_path):
    path = tmp_path / "tuned.toml"
    out = run("tune", "--output", str(path), "--repeat", "1")
    assert out.returncode == 0, out.stderr
    from fftconv.config import read_config

    tuned = read_config(path)
    assert tuned.fft.ns_per_nlogn > 0 and tuned.direct.ns_per_mac > 0
    assert "fft.ns_per_nlogn" in out.stderr
