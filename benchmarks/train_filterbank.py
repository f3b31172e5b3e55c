#!/usr/bin/env python
"""Train a filterbank with fftconv's PyTorch module: fit a target filterbank's output.

The target is a bank of four band-pass FIR filters (windowed sinc, 63 taps,
bands 0.05-0.15, 0.15-0.3, 0.3-0.5 and 0.5-0.8 of Nyquist).  A
`fftconv.torch.SignalConv1d` of the same shape (1 -> 4 channels, tfc's 'rdft'
kernel, seeded random initial weights) sees fresh white noise every step and learns,
with Adam on the mean squared error, to reproduce the bank's output: the loss
falls by orders of magnitude in a few hundred steps.  CPU only, a few seconds.

Run ``python benchmarks/train_filterbank.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal
import torch

try:
    import fftconv
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fftconv
from fftconv.torch import SignalConv1d

TAPS = 63
BANDS = ((0.05, 0.15), (0.15, 0.3), (0.3, 0.5), (0.5, 0.8))
LAYOUT = dict(padding="same_zeros", data_format="channels_first")


def target_kernel() -> np.ndarray:
    """The target bank, shape ``(TAPS, 1, len(BANDS))`` (tfc's kernel layout)."""
    bank = [scipy.signal.firwin(TAPS, band, pass_zero=False) for band in BANDS]
    return np.stack(bank, axis=-1)[:, None, :].astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=4096, help="samples per example")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    target = target_kernel()
    model = SignalConv1d(1, len(BANDS), TAPS, **LAYOUT)
    with torch.no_grad():  # seeded initial weights (the layer's initializer is not)
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x = rng.standard_normal((args.batch, 1, args.width)).astype(np.float32)
        wanted = torch.from_numpy(fftconv.signal_conv1d(x, target, **LAYOUT))
        loss = torch.mean((model(torch.from_numpy(x)) - wanted) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % 25 == 0:
            print(f"step {step:4d}  loss {loss.item():.3e}")
    seconds = time.perf_counter() - start
    learned = model.time_domain_kernel().numpy()
    error = np.linalg.norm(learned - target) / np.linalg.norm(target)
    print(f"{args.steps} steps in {seconds:.1f} s; relative kernel error {error:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
