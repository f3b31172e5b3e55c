"""fftconv without its optional packages: pyFFTW, soundfile, CuPy (and a GPU).

Each case runs in a fresh interpreter in which the missing packages are blocked
(``sys.modules[name] = None`` makes their import fail).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(blocked: tuple[str, ...], body: str) -> subprocess.CompletedProcess:
    code = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    return subprocess.run([sys.executable, "-c", code + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=120)


def test_cpu_features_work_without_pyfftw_soundfile_and_cupy():
    result = _run(("pyfftw", "soundfile", "cupy", "cupyx"), """
        import warnings
        import numpy as np
        import fftconv
        from fftconv.backends import get_backend

        x = np.random.default_rng(0).standard_normal((2, 3000, 3))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            layer = fftconv.SignalConv1D(4, 65, method="fft", padding="same_zeros")
            y = layer(x)
            layer(x[:, :2000])
        assert [str(w.message).split(":")[0] for w in caught] == ["pyFFTW is not installed"]
        assert layer.engine.backend.name == "numpy" and y.shape == (2, 3000, 4)
        fftconv.convolve(x[0, :, 0], np.ones(5))
        stream = fftconv.StreamingConv1D(np.ones((5, 3, 1)), channel_separable=True)
        stream.process(x[0])
        for name, module in (("pyfftw", "pyFFTW"), ("cupy", "CuPy")):
            try:
                get_backend(name)
            except ImportError as err:
                assert module in str(err), err
            else:
                raise AssertionError(name)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_backend_cupy_without_cupy_names_the_extra():
    result = _run(("cupy",), """
        import numpy as np
        import fftconv

        layer = fftconv.SignalConv1D(4, 65, backend="cupy")
        print(layer.engine.plan_for((1, 3, 1000), "float32").device)
        layer(np.ones((1, 1000, 3)))
    """)
    assert result.stdout.strip() == "cuda"  # planning needs no GPU
    assert "ImportError: backend 'cupy' needs CuPy" in result.stderr
    assert "pip install 'fftconv[cuda12]'" in result.stderr
    assert "pip install 'fftconv[cuda13]'" in result.stderr


@pytest.mark.parametrize("command", [
    ["plan", "--filters", "4", "--kernel-support", "257", "--input-shape", "1,100000,2",
     "--backend", "cupy"],
    ["plan", "--filters", "4", "--kernel-support", "9", "--input-shape", "1,1000,2"],
])
def test_command_line_plans_without_soundfile_pyfftw_and_cupy(command):
    result = _run(("pyfftw", "soundfile", "cupy"), f"""
        from fftconv import cli
        sys.exit(cli.main({command!r}))
    """)
    assert result.returncode == 0, result.stderr
    assert "Plan:" in result.stdout
    assert ("device=cuda" in result.stdout) == ("cupy" in command)


def test_filter_without_soundfile_is_a_one_line_error():
    result = _run(("soundfile",), """
        from fftconv import cli
        sys.exit(cli.main(["filter", "in.wav", "ir.wav", "out.wav"]))
    """)
    assert result.returncode == 2
    assert result.stderr.startswith("fftconv filter: error: reading and writing audio files "
                                    "needs the soundfile package")
    assert "pip install soundfile" in result.stderr


def test_default_config_is_found_in_a_source_checkout_without_installing(monkeypatch):
    # Run from the repository root with PYTHONPATH=. there is no fftconv.configs
    # package (pyproject maps configs/ to it on install); the default is beside it.
    from importlib import resources

    from fftconv import config

    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    installed = config.default_config_path()
    monkeypatch.setattr(resources, "files", missing)
    path = config.default_config_path()
    assert path.name == "default.toml" and path.read_bytes() == installed.read_bytes()
