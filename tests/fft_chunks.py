"""The FFT path in several chunks, and a count of the input blocks it transforms."""

from __future__ import annotations

import dataclasses

from fftconv.config import Config, load_config
from fftconv.paths import fft as fft_path


def short_chunks() -> Config:
    """The default configuration with FFT blocks of at most 64 samples, one per chunk."""
    config = load_config()
    return dataclasses.replace(
        config, fft=dataclasses.replace(config.fft, max_fft_length=64),
        memory=dataclasses.replace(config.memory, fft_bytes=1),
        cupy=dataclasses.replace(config.cupy, cufft_max_length=64, fft_chunk_bytes=1))


def gathered_rows(monkeypatch) -> list[int]:
    """Input blocks that the FFT path gathers for its forward transforms, per chunk, from now."""
    rows: list[int] = []
    gather = fft_path._gather_blocks

    def counting(x, first, step, seg, backend):
        rows.append(seg.shape[0] * seg.shape[1] * seg.shape[2])
        gather(x, first, step, seg, backend)

    monkeypatch.setattr(fft_path, "_gather_blocks", counting)
    return rows
