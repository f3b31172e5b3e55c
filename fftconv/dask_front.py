"""Apply a `SignalConv1D` lazily to a Dask array, chunk by chunk, exact across chunks.

Each output chunk is computed by one call of the layer itself on one input
chunk and the halo its outputs read from the neighbouring chunks
(``dask.array.map_overlap`` with ``boundary='none'``, ``trim=False``): the
layer's own ``same_zeros``/``same_reflect`` extension is right at the true
ends of the signal (the first and last blocks), and the outputs that read a
block's artificial ends are dropped.  For that, every output must belong to
exactly one input chunk: chunk ``[i0, i1)`` owns outputs
``[i0*P/S, i1*P/S)`` (``P``, ``S``: the output and input phase counts of
:class:`~fftconv.reduction.Polyphase`), so chunk boundaries are rechunked to
multiples of ``S`` and chunks are made at least as long as the halo (and, by
default, as one block of the planner's long-input FFT).

The layer travels to the workers once, as one graph key holding its
arguments and weights; each process rebuilds it once per weights (see
:func:`process_stats`) and its engine keeps the kernel spectra for every
block the process runs.  Dask is imported only here, and only when used.
"""

from __future__ import annotations

import numbers
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np

from fftconv._arrays import as_real_array
from fftconv.planner import plan
from fftconv.reduction import polyphase
from fftconv.spec import ConvSpec

#: Rebuilt layers (distinct weights) a process keeps, least recently used dropped first.
MAX_LAYERS = 8

_INSTALL = "pip install 'fftconv[dask]'"


def is_dask_array(x: Any) -> bool:
    """Whether `x` is a ``dask.array.Array`` (False, and no import, when Dask is not loaded)."""
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(x, array.Array)


def apply(layer: Any, x: Any, *, min_chunk: int | None = None) -> Any:
    """Apply `layer` to the Dask array `x`, lazily; what ``layer(x)`` does for Dask input.

    Parameters
    ----------
    layer : SignalConv1D
        Built on first use from ``x.shape`` if needed; its kernel and bias are
        read now (later ``set_weights`` calls do not change the result).
    x : dask.array.Array, shape (batch, width, C_in) or (batch, C_in, width)
        Real numbers, any chunks of known size; the channel axis is made one
        chunk, width chunks are aligned as described in the module docstring.
    min_chunk : int or None
        Shortest width chunk wanted, in input samples, before alignment; the
        halo and the reflected edges may ask for more.  None: one block of
        the planner's long-input FFT when it chooses the FFT path, else only
        what alignment needs.

    Returns
    -------
    dask.array.Array, shape (batch, width_out, C_out) or (batch, C_out, width_out)
        The layer dtype, known chunks (batch as in `x`, one channel chunk)
        and the array type of ``x._meta``; nothing is computed.

    Raises
    ------
    ImportError
        If ``dask[array]`` is not installed.
    TypeError
        If `x` is not a Dask array of real numbers, or `min_chunk` not an int.
    ValueError
        As ``layer(x)`` would (rank, channels, width too short), if `x` has
        chunks of unknown size, or if `min_chunk` < 1.
    """
    da = _dask_array()
    if not isinstance(x, da.Array):
        raise TypeError(f"`x` must be a dask.array.Array, got {type(x).__name__}.")
    if min_chunk is not None:
        if isinstance(min_chunk, bool) or not isinstance(min_chunk, numbers.Integral):
            raise TypeError(f"`min_chunk` must be None or an int, got {min_chunk!r}.")
        if min_chunk < 1:
            raise ValueError(f"`min_chunk` must be None or >= 1, got {min_chunk}.")
    as_real_array(np.empty(0, x.dtype), "x", None)  # rejects complex and object data
    if any(np.isnan(n) for n in x.shape):
        raise ValueError(f"`x` has chunks of unknown size (shape {x.shape}); call "
                         f"x.compute_chunk_sizes() first.")
    layer._check_input(x.shape)
    w_axis, c_axis = (1, 2) if layer.time_major else (2, 1)
    spec, width = layer.spec, x.shape[w_axis]
    n_out = spec.output_width(width)

    poly = polyphase(spec)
    left, right = _halo(spec)
    minimum = max(left, right, *(pad + 1 for pad in spec.input_pads))
    minimum = max(minimum, _preferred_chunk(layer, x, w_axis) if min_chunk is None
                  else min_chunk)
    bounds = _chunk_bounds(x.chunks[w_axis], poly.in_phases, minimum,
                           lambda start: start * poly.out_phases // poly.in_phases < n_out)
    chunks = list(x.chunks)
    chunks[w_axis] = tuple(np.diff(bounds).tolist())
    chunks[c_axis] = (x.shape[c_axis],)
    if tuple(chunks) != x.chunks:
        x = x.rechunk(tuple(chunks))

    owned = [b * poly.out_phases // poly.in_phases for b in bounds[1:-1]]
    out_bounds = [0, *owned, n_out]
    out_chunks = list(x.chunks)
    out_chunks[w_axis] = tuple(np.diff(out_bounds).tolist())
    out_chunks[c_axis] = (layer._output_channels(x.shape[c_axis]),)
    many = len(bounds) > 2
    # Block i > 0 starts `left` samples (left*P/S outputs) before its chunk.
    first = left * poly.out_phases // poly.in_phases
    spans = tuple((first if i else 0, n) for i, n in enumerate(out_chunks[w_axis]))

    from dask.array.utils import meta_from_array

    return da.map_overlap(
        _run_block, x, depth={w_axis: (left, right) if many else 0}, boundary="none",
        trim=False, chunks=tuple(out_chunks), dtype=layer.dtype,
        meta=meta_from_array(x._meta, ndim=3, dtype=layer.dtype), token="signal_conv1d",
        shipped=_delayed(_Shipped.of(layer)), w_axis=w_axis, spans=spans)


def process_stats() -> dict[str, int]:
    """Counters of this process's Dask blocks, for tests and monitoring.

    Returns
    -------
    dict
        ``layers``: layers rebuilt from shipped weights and kept;
        ``blocks``: blocks computed; ``kernel_arrays``: phase kernels and
        spectra computed by those layers' engines; ``kernel_entries``: those
        held in their caches (equal to ``kernel_arrays`` when nothing was
        computed twice).
    """
    return _LAYERS.stats()


# -- geometry ---------------------------------------------------------------------


def _halo(spec: ConvSpec) -> tuple[int, int]:
    """Input samples ``(left, right)`` of the neighbours that a chunk's outputs need.

    Output ``n`` reads the upsampled input at ``n*D - c + j`` for taps
    ``0 <= j < K`` (``c`` the centre, 0 for `valid`), so chunk ``[i0, i1)``
    reads samples ``i0 - c // U`` to ``i1 - 1 + (K - 1 - c - D) // U + 1``.
    The layer run on the block must also count the chunk's last output among
    its own (tfc's output width), which for `valid` or without
    `extra_pad_end` may take one sample more.  The left halo is rounded up to
    a multiple of ``S`` so that a block's outputs stay aligned with the chunk's.
    """
    k, u, d = spec.kernel_support, spec.strides_up, spec.strides_down
    c = 0 if spec.padding == "valid" else spec.centre
    s = polyphase(spec).in_phases
    left = -(-(c // u) // s) * s
    reads = (k - 1 - c - d) // u + 1
    # The block's upsampled length must be at least (n1 - 1)*D + 1 (+ K - 1 for
    # valid) with n1*D = i1*U: `reach` upsampled samples past the chunk's end.
    reach = 1 - d + (k - 1 if spec.padding == "valid" else 0)
    counts = -(-reach // u) if spec.extra_pad_end else -(-(reach - 1) // u) + 1
    return left, max(0, reads, counts)


def _chunk_bounds(chunks: tuple[int, ...], step: int, minimum: int,
                  owns_outputs: Callable[[int], bool]) -> list[int]:
    """Chunk boundaries along the width: the given ones rounded up to multiples of `step`.

    A boundary is kept if the chunk it ends has at least `minimum` samples;
    the last chunk merges into the one before while shorter than `minimum` or
    owning no output (``owns_outputs(start)`` false: `valid` layers read past
    their last outputs).
    """
    width = sum(chunks)
    minimum = -(-minimum // step) * step
    bounds = [0]
    for end in accumulate(chunks[:-1]):
        end = -(-end // step) * step
        if end - bounds[-1] >= minimum:
            bounds.append(end)
    while len(bounds) > 1 and (width - bounds[-1] < minimum or not owns_outputs(bounds[-1])):
        bounds.pop()
    return [*bounds, width]


def _preferred_chunk(layer: Any, x: Any, w_axis: int) -> int:
    """Input samples of one block of the planner's FFT for the whole signal (0: direct path)."""
    batch = max(x.chunks[0])
    c_in = x.shape[3 - w_axis]
    engine = layer.engine
    chosen = plan(layer.spec, (batch, c_in, x.shape[w_axis]), layer.dtype, engine.backend_name,
                  engine.config, filters=layer.filters, method=layer.method,
                  time_major=layer.time_major)
    return chosen.block * polyphase(layer.spec).in_phases if chosen.path == "fft" else 0


# -- the blocks ---------------------------------------------------------------------


def _run_block(block: Any, shipped: _Shipped, w_axis: int, spans: tuple[tuple[int, int], ...],
               block_id: tuple[int, ...] | None = None) -> Any:
    """The outputs chunk `block_id` owns: the layer on its block, cropped to `spans`.

    Parameters
    ----------
    block : ndarray, shape (batch, width, C_in) or (batch, C_in, width)
        A chunk and its halo (none beyond the signal's ends).
    spans : tuple of (int, int)
        For each width chunk, the first of the block's outputs that the chunk
        owns and how many it owns.
    """
    start, count = spans[block_id[w_axis]]
    y = _LAYERS.get(shipped)(block)
    _LAYERS.count_block()
    crop = [slice(None)] * 3
    crop[w_axis] = slice(start, start + count)
    return y[tuple(crop)]


@dataclass(frozen=True, eq=False)
class _Shipped:
    """A layer as it travels to workers: its class, arguments and weights, by value.

    `token` identifies them all; each process rebuilds the layer once per token.
    """

    token: str
    cls: type
    arguments: dict

    @classmethod
    def of(cls, layer: Any) -> _Shipped:
        # The current weights by value and the resolved configuration; the
        # rebuilt layer runs their arrays as they are.
        arguments = {**layer.constructor_arguments(), "kernel_parameter": layer.kernel,
                     "bias_parameter": layer.bias if layer.use_bias else "variable",
                     "config": layer.engine.config}
        from dask.base import tokenize

        return cls(tokenize(type(layer), arguments), type(layer), arguments)

    def __dask_tokenize__(self) -> str:
        return self.token


class _ProcessLayers:
    """The layers this process rebuilt from shipped weights, one per token, and counters."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._layers: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._blocks = 0

    def get(self, shipped: _Shipped) -> Any:
        with self._lock:
            layer = self._layers.get(shipped.token)
            if layer is None:
                layer = self._layers[shipped.token] = shipped.cls(**shipped.arguments)
                while len(self._layers) > self.size:
                    self._layers.popitem(last=False)
            else:
                self._layers.move_to_end(shipped.token)
            return layer

    def count_block(self) -> None:
        with self._lock:
            self._blocks += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            caches = [layer.engine.spectra for layer in self._layers.values()]
            return {"layers": len(caches), "blocks": self._blocks,
                    "kernel_arrays": sum(c.computed for c in caches),
                    "kernel_entries": sum(len(c.keys()) for c in caches)}


_LAYERS = _ProcessLayers(MAX_LAYERS)


def _delayed(shipped: _Shipped) -> Any:
    """`shipped` as one graph key, so that it travels once to each worker, not per task."""
    from dask import delayed

    return delayed(shipped, pure=True, traverse=False)


def _dask_array() -> Any:
    try:
        import dask.array
    except ImportError as err:
        raise ImportError(f"Dask input needs dask[array] and distributed: {_INSTALL}.") from err
    return dask.array
