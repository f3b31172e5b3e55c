"""FFTW wisdom files: merging on save, turning the save off, warnings on failure."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

pytest.importorskip("pyfftw")

from fftconv import _files, backends  # noqa: E402
from fftconv.backends import get_backend, pyfftw_backend  # noqa: E402
from fftconv.config import load_config, parse_config, tomllib  # noqa: E402

SIZES = (96, 120, 160, 200)  # block transform lengths planned by the writer processes
NEVER_PLANNED = 210

# Plans block transforms of the sizes in argv[1:] with FFTW_MEASURE (so they leave
# wisdom), prints a line, and waits for one on stdin if FFTCONV_TEST_WAIT is set.
# Wisdom is saved at exit, as in any program using the pyfftw backend.
WRITER = """
import os, sys
from fftconv.backends import get_backend
backend = get_backend("pyfftw", threads=1, planner_effort="FFTW_MEASURE")
for n in sys.argv[1:]:
    backend.block_fft(2, 2, int(n), "float64")
print("planned", flush=True)
if os.environ.get("FFTCONV_TEST_WAIT"):
    sys.stdin.readline()
"""

# Prints, as JSON, for each size in argv[1:], whether the wisdom imported from the
# cache directory plans its block transforms with FFTW_WISDOM_ONLY (which fails
# without wisdom for exactly that transform).
READER = """
import json, sys
from fftconv.backends.pyfftw_backend import PyFFTWBackend
known = {}
for n in sys.argv[1:]:
    try:
        PyFFTWBackend(1, "FFTW_WISDOM_ONLY").block_fft(2, 2, int(n), "float64")
        known[n] = True
    except RuntimeError:
        known[n] = False
print(json.dumps(known))
"""


@pytest.fixture(autouse=True)
def _fresh_process_state(tmp_path, monkeypatch):
    """Wisdom I/O under `tmp_path`; process-wide flags as in a new process."""
    monkeypatch.setenv("FFTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(_files.SAVE_WISDOM_ENV, raising=False)
    monkeypatch.setattr(_files, "_warned", set())
    monkeypatch.setattr(pyfftw_backend, "_exit_save_disabled", False)


def _env(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in (_files.SAVE_WISDOM_ENV, "FFTCONV_CONFIG", "PYTHONWARNINGS")}
    # Show every RuntimeWarning, so that only fftconv's own deduplication is tested.
    env.update(FFTCONV_CACHE_DIR=str(cache_dir), PYTHONWARNINGS="always::RuntimeWarning",
               **extra)
    return env


def _start_writer(cache_dir: Path, *sizes: int, wait: bool = False) -> subprocess.Popen:
    env = _env(cache_dir, **({"FFTCONV_TEST_WAIT": "1"} if wait else {}))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, *map(str, sizes)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "planned\n"
    return proc


def _finish(proc: subprocess.Popen) -> None:
    proc.communicate("\n", timeout=120)
    assert proc.returncode == 0


def _known_sizes(cache_dir: Path) -> dict[int, bool]:
    sizes = (*SIZES, NEVER_PLANNED)
    result = subprocess.run([sys.executable, "-c", READER, *map(str, sizes)],
                            env=_env(cache_dir, FFTCONV_SAVE_WISDOM="0"),
                            capture_output=True, text=True, timeout=120, check=True)
    return {int(n): ok for n, ok in json.loads(result.stdout).items()}


def _run(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=120)


# -- 1. merging on save -------------------------------------------------------------


@pytest.mark.slow
def test_save_keeps_wisdom_saved_meanwhile_by_another_process(tmp_path):
    first = _start_writer(tmp_path, SIZES[0], wait=True)  # has read the (missing) file
    _finish(_start_writer(tmp_path, SIZES[1]))            # saves SIZES[1]
    _finish(first)                                        # saves SIZES[0] on top
    known = _known_sizes(tmp_path)
    assert known[SIZES[0]] and known[SIZES[1]]
    assert not known[NEVER_PLANNED]  # the check itself can fail


@pytest.mark.slow
def test_processes_exiting_together_keep_all_wisdom(tmp_path):
    writers = [_start_writer(tmp_path, n, wait=True) for n in SIZES]
    for proc in writers:  # release them together: their saves overlap
        proc.stdin.write("\n")
        proc.stdin.flush()
    for proc in writers:
        _finish(proc)
    known = _known_sizes(tmp_path)
    assert all(known[n] for n in SIZES), known
    assert not known[NEVER_PLANNED]
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # all cleaned up


def test_save_merges_the_file_into_fftw_wisdom(tmp_path, monkeypatch):
    path = tmp_path / "fftw-wisdom.json"
    imported = []
    real_import = pyfftw_backend.pyfftw.import_wisdom
    monkeypatch.setattr(pyfftw_backend.pyfftw, "import_wisdom",
                        lambda wisdom: imported.append(wisdom) or real_import(wisdom))
    pyfftw_backend.save_wisdom(path)
    assert imported == []  # no file yet: nothing to merge
    pyfftw_backend.save_wisdom(path)
    assert imported == [pyfftw_backend._decode_wisdom(path.read_text())]
    path.write_text("corrupt")
    pyfftw_backend.save_wisdom(path)  # an invalid file is replaced, silently
    assert len(imported) == 1
    assert pyfftw_backend.load_wisdom(path) is True


@pytest.mark.skipif(_files.fcntl is None, reason="no advisory file locks")
def test_save_waits_for_the_file_lock(tmp_path, monkeypatch):
    import fcntl
    import time

    path = tmp_path / "fftw-wisdom.json"
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds):
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(_files.time, "sleep", sleep)
    fd = os.open(tmp_path / "fftw-wisdom.json.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process in the middle of a save
        saver = threading.Thread(target=pyfftw_backend.save_wisdom, args=(path,))
        saver.start()
        assert waiting.wait(timeout=30)
        assert not path.exists()
        fcntl.flock(fd, fcntl.LOCK_UN)
        saver.join(timeout=60)
        assert path.exists()
    finally:
        os.close(fd)


@pytest.mark.skipif(_files.fcntl is None, reason="no advisory file locks")
def test_save_goes_on_without_a_lock_held_too_long(tmp_path, monkeypatch):
    import fcntl

    monkeypatch.setattr(_files, "LOCK_TIMEOUT", 0.0)
    fd = os.open(tmp_path / "fftw-wisdom.json.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert pyfftw_backend.save_wisdom() == tmp_path / "fftw-wisdom.json"
        assert pyfftw_backend.load_wisdom() is True
    finally:
        os.close(fd)


# -- 2. turning the save at exit off -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", False), ("false", False), ("No", False), (" 1 ", True), ("TRUE", True),
     ("yes", True), ("", None)],
)
def test_save_wisdom_variable_values(monkeypatch, value, expected):
    monkeypatch.setenv("FFTCONV_SAVE_WISDOM", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _files.save_wisdom_env() is expected


def test_invalid_save_wisdom_variable_warns_once(monkeypatch):
    monkeypatch.setenv("FFTCONV_SAVE_WISDOM", "maybe")
    with pytest.warns(RuntimeWarning, match="FFTCONV_SAVE_WISDOM='maybe'") as record:
        assert _files.save_wisdom_env() is None
        assert _files.save_wisdom_env() is None
    assert len(record) == 1


@pytest.mark.parametrize(
    ("disabled", "variable", "saved"),
    [(False, None, True), (True, None, False), (True, "1", True), (False, "0", False),
     (False, "maybe", True), (True, "maybe", False)],
)
def test_exit_save_follows_the_variable_then_the_configuration(
        tmp_path, monkeypatch, disabled, variable, saved):
    monkeypatch.setattr(pyfftw_backend, "_exit_save_disabled", disabled)
    if variable is not None:
        monkeypatch.setenv("FFTCONV_SAVE_WISDOM", variable)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pyfftw_backend._save_wisdom_at_exit()
    assert (tmp_path / "fftw-wisdom.json").exists() is saved
    assert len(record) == (variable == "maybe")


def test_backend_created_without_saving_turns_the_exit_save_off(monkeypatch):
    monkeypatch.setattr(backends, "_instances", {})
    kept = get_backend("pyfftw", threads=1, planner_effort="FFTW_ESTIMATE")
    assert kept.save_wisdom is True and not pyfftw_backend._exit_save_disabled
    off = get_backend("pyfftw", threads=1, planner_effort="FFTW_ESTIMATE", save_wisdom=False)
    assert off is not kept and off.save_wisdom is False
    assert "save_wisdom=False" in repr(off)
    assert pyfftw_backend._exit_save_disabled
    assert get_backend("numpy", threads=1, save_wisdom=False) is get_backend("numpy", threads=1)


def test_engine_passes_save_wisdom_from_the_configuration(monkeypatch):
    from fftconv.engine import Engine
    from fftconv.spec import ConvSpec

    monkeypatch.setattr(backends, "_instances", {})
    default = load_config()
    config = dataclasses.replace(
        default, pyfftw=dataclasses.replace(default.pyfftw, save_wisdom=False))
    assert Engine(ConvSpec(3), 1, backend="pyfftw", config=config).backend.save_wisdom is False
    assert Engine(ConvSpec(3), 1, backend="pyfftw").backend.save_wisdom is True


def _config_text(save_wisdom: object) -> str:
    lines = load_config().to_toml().splitlines()
    return "\n".join(f"save_wisdom = {save_wisdom}" if line.startswith("save_wisdom =")
                     else line for line in lines)


def test_save_wisdom_config_key():
    assert load_config().pyfftw.save_wisdom is True
    assert "save_wisdom = true" in load_config().to_toml()  # TOML's spelling
    assert parse_config(tomllib.loads(_config_text("false")), "x").pyfftw.save_wisdom is False
    with pytest.raises(ValueError, match="'pyfftw.save_wisdom' must be of type bool"):
        parse_config(tomllib.loads(_config_text('"no"')), "x")
    with pytest.raises(ValueError, match="missing key 'pyfftw.save_wisdom'"):
        parse_config(tomllib.loads(_config_text("true").replace("save_wisdom = true", "")),
                     "x")


ENGINE = """
from fftconv.engine import Engine
from fftconv.spec import ConvSpec
Engine(ConvSpec(3), 1, backend="pyfftw").backend.rfft([1.0, 2.0], 2)
"""


@pytest.mark.parametrize(
    ("config_value", "variable", "saved"),
    [("true", "0", False), ("false", None, False), ("false", "yes", True),
     ("true", None, True)],
)
def test_wisdom_saved_at_exit_only_when_on(tmp_path, config_value, variable, saved):
    config = tmp_path / "config.toml"
    config.write_text(_config_text(config_value))
    cache = tmp_path / "cache"
    extra = {"FFTCONV_CONFIG": str(config)}
    if variable is not None:
        extra["FFTCONV_SAVE_WISDOM"] = variable
    result = _run(ENGINE, _env(cache, **extra))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (cache / "fftw-wisdom.json").exists() is saved


# -- 3. warnings when the cache directory is unwritable ------------------------------

# Creates a backend (its wisdom is then saved at exit) and, with an argument, also
# saves explicitly.
UNWRITABLE = """
import sys
from fftconv.backends import get_backend, pyfftw_backend
get_backend("pyfftw", threads=1, planner_effort="FFTW_ESTIMATE").rfft([1.0, 2.0], 2)
if sys.argv[1:]:
    pyfftw_backend.save_wisdom()
"""


@pytest.mark.parametrize(
    ("variable", "explicit", "warnings_expected"),
    [(None, False, 0), ("1", False, 1), ("1", True, 1), (None, True, 1)],
)
def test_unwritable_cache_warns_once_and_only_when_asked(tmp_path, variable, explicit,
                                                         warnings_expected):
    (tmp_path / "file").write_text("")
    env = _env(tmp_path / "file" / "cache",  # cannot be created, even by root
               **({"FFTCONV_SAVE_WISDOM": variable} if variable else {}))
    result = _run(UNWRITABLE, env, *(["explicit"] if explicit else []))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("RuntimeWarning") == warnings_expected, result.stderr
    assert result.stderr.count("could not be saved") == warnings_expected
    if not warnings_expected:
        assert result.stderr == ""


def test_explicit_save_warns_once_per_process(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.warns(RuntimeWarning, match="could not be saved") as record:
        pyfftw_backend.save_wisdom(tmp_path / "file" / "a.json")
        pyfftw_backend.save_wisdom(tmp_path / "file" / "b.json")
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the caller


def test_default_exit_save_fails_silently(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FFTCONV_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert pyfftw_backend.load_wisdom() is False  # no file can be there: silent too
        pyfftw_backend._save_wisdom_at_exit()
    assert record == []
    monkeypatch.setenv("FFTCONV_SAVE_WISDOM", "true")
    with pytest.warns(RuntimeWarning, match="could not be saved"):
        pyfftw_backend._save_wisdom_at_exit()
