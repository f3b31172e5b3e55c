"""Direct path on a GPU for few channels: ``corr_valid`` as one polyphase FIR kernel.

With few channels the gathered-window GEMMs (:mod:`fftconv.paths.direct`) are
thin and spend their time copying ``Kp`` windows of every input sample.  This
path launches one CUDA kernel instead: each thread computes one output sample
of the phase problem::

    y[b, g*Co + o, t] = sum_{i < Ci, k < Kp} w[g, o, i, k] * x[b, g*Ci + i, t + k]

reading the phase inputs where they lie (any strides) and writing the output
in the layout asked for.  The sizes, the tap count ``Kp`` included, and the
strides are arguments of the launch, so one kernel per dtype serves every
layer; the backend compiles it once per device (:meth:`CupyBackend.launch
<fftconv.backends.cupy_backend.CupyBackend.launch>`).  The planner chooses this
path on a GPU for problems with fewer than the device's ``shifted_min_channels``
input or output channels per group (:func:`~fftconv.planner.direct_variant`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fftconv.backends import Backend

if TYPE_CHECKING:
    from fftconv.backends.cupy_backend import CupyBackend

#: CUDA source of the kernel, one instantiation per dtype (:data:`FIR_KERNELS`).
#: Arguments: ``x, w, y`` (``w`` C-contiguous ``(G, Co, Ci, Kp)``), then the sizes
#: ``B, G, Ci, Co, Kp, T`` and the element strides of ``x`` and ``y`` (batch,
#: channel, time), all ``long long``.  Thread ``n`` computes output ``(b, g, o, t)``
#: with ``t`` fastest, so neighbouring threads read neighbouring input samples.
FIR_SOURCE = r"""
template <typename T>
__device__ __forceinline__ void corr_valid_fir(
    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
    long long batch, long long groups, long long c_in, long long c_out,
    long long taps, long long outputs,
    long long xs_b, long long xs_c, long long xs_t,
    long long ys_b, long long ys_c, long long ys_t)
{
    const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= batch * groups * c_out * outputs) {
        return;
    }
    const long long t = n % outputs;
    const long long row = n / outputs;  /* (b, g, o) */
    const long long o = row % c_out;
    const long long g = (row / c_out) % groups;
    const long long b = row / (c_out * groups);
    const T* xg = x + b * xs_b + g * c_in * xs_c + t * xs_t;
    const T* wo = w + (g * c_out + o) * c_in * taps;
    T acc = 0;
    for (long long i = 0; i < c_in; ++i) {
        const T* xi = xg + i * xs_c;
        const T* wi = wo + i * taps;
        for (long long k = 0; k < taps; ++k) {
            acc += wi[k] * xi[k * xs_t];
        }
    }
    y[b * ys_b + (g * c_out + o) * ys_c + t * ys_t] = acc;
}

#define FIR_ARGS(T) \
    const T* x, const T* w, T* y, long long batch, long long groups, long long c_in, \
    long long c_out, long long taps, long long outputs, long long xs_b, long long xs_c, \
    long long xs_t, long long ys_b, long long ys_c, long long ys_t
#define FIR_CALL \
    corr_valid_fir(x, w, y, batch, groups, c_in, c_out, taps, outputs, \
                   xs_b, xs_c, xs_t, ys_b, ys_c, ys_t)

extern "C" __global__ void corr_valid_fir_f32(FIR_ARGS(float)) { FIR_CALL; }
extern "C" __global__ void corr_valid_fir_f64(FIR_ARGS(double)) { FIR_CALL; }
"""

#: The kernel of :data:`FIR_SOURCE` for each dtype.
FIR_KERNELS = {np.dtype(np.float32): "corr_valid_fir_f32",
               np.dtype(np.float64): "corr_valid_fir_f64"}

#: Threads per block of a launch.
FIR_THREADS = 256


def fir_launch(x: Any, w: Any, out: Any) -> tuple[tuple[int], tuple[int], tuple]:
    """The grid, the block and the arguments of the kernel for ``out = corr_valid(x, w)``.

    Parameters
    ----------
    x : device array, shape (B, G*Ci, T + Kp - 1), any strides
    w : device array, shape (G, Co, Ci, Kp), C-contiguous, dtype of `x`
    out : device array, shape (B, G*Co, T), any strides, dtype of `x`; ``T >= 1``

    Returns
    -------
    grid, block : tuple of one int
        One thread per output sample, :data:`FIR_THREADS` per block.
    args : tuple
        As :data:`FIR_SOURCE` takes them, the sizes and strides as ``int64``.
    """
    assert w.flags.c_contiguous and x.dtype == w.dtype == out.dtype
    groups, c_out, c_in, taps = w.shape
    batch, _, outputs = out.shape
    sizes = (batch, groups, c_in, c_out, taps, outputs)
    strides = (*(s // x.itemsize for s in x.strides), *(s // out.itemsize for s in out.strides))
    blocks = -(-batch * groups * c_out * outputs // FIR_THREADS)
    return (blocks,), (FIR_THREADS,), (x, w, out, *(np.int64(v) for v in sizes + strides))


def corr_valid_fir(x: Any, w: Any, time_major: bool, backend: CupyBackend) -> Any:
    """Grouped, stride-1, valid cross-correlation by one launch of the FIR kernel.

    Parameters
    ----------
    x : device array, shape (B, G*Ci, L), float32 or float64, any strides
    w : device array, shape (G, Co, Ci, Kp), C-contiguous, dtype of `x`, ``Kp <= L``
    time_major : bool
        Lay the result out channels last in memory (a transposed view).
    backend : CupyBackend
        Where `x` and `w` live.

    Returns
    -------
    device array, shape (B, G*Co, L - Kp + 1)
    """
    groups, c_out, _, kp = w.shape
    out = backend.empty_signal((x.shape[0], groups * c_out, x.shape[-1] - kp + 1), x.dtype,
                               time_major)
    if out.size:
        backend.launch(FIR_SOURCE, FIR_KERNELS[x.dtype], *fir_launch(x, w, out))
    return out


class FIRPath:
    """The engine's ``'direct-fir'`` path (GPU, few channels): one kernel on the phase inputs."""

    def prepare(self, w: np.ndarray, plan: Any, backend: Backend) -> Any:
        """The phase kernels ``(G, Co, Ci, Kp)`` on the device, C-contiguous for the kernel."""
        return backend.to_device(np.ascontiguousarray(w))

    def run(self, x: Any, w: Any, plan: Any, job: Any) -> Any:
        """The layer output ``(B, C_out, n_out)``, without bias, for the input ``(B, C_in, W)``."""
        backend, poly = job.backend, job.poly
        xs = poly.phase_inputs(x, job.n_out, backend)
        y = corr_valid_fir(xs, w, job.time_major, backend)
        return poly.reassemble(y, job.n_out, x.shape[1], job.time_major, backend)
