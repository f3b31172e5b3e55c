"""Accumulating GEMM on row-major views: ``c = a @ b + beta * c`` in place.

``numpy.matmul`` cannot accumulate into its output, so summing many products
costs a temporary and an addition pass each.  This module calls the BLAS
``sgemm``/``dgemm`` that SciPy exports for Cython (``scipy.linalg.cython_blas``,
the same capsules numba uses) through :mod:`ctypes`, which releases the GIL.
The operands are row-major matrices with unit column stride and any row stride
(slices of rows of larger arrays), so shifted row windows of a signal are
multiplied where they lie, without copies.
"""

from __future__ import annotations

import ctypes

import numpy as np
import scipy.linalg.cython_blas as cython_blas

_INT = ctypes.POINTER(ctypes.c_int)
_PTR = ctypes.c_void_p
_CHAR = ctypes.c_char_p
#: Fortran ``?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``.
_GEMM_TYPE = ctypes.CFUNCTYPE(None, _CHAR, _CHAR, _INT, _INT, _INT, _PTR, _PTR, _INT,
                              _PTR, _INT, _PTR, _PTR, _INT)


def _capsule_function(name: str) -> ctypes._CFuncPtr:
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                  ctypes.c_char_p]
    return _GEMM_TYPE(get_pointer(capsule, get_name(capsule)))


_GEMM = {np.dtype(np.float32): _capsule_function("sgemm"),
         np.dtype(np.float64): _capsule_function("dgemm")}
_NO_TRANSPOSE = ctypes.c_char_p(b"N")


def _row_stride(m: np.ndarray, columns: int, name: str) -> int:
    """Row stride of `m` in elements; checks unit column stride and rows not overlapping."""
    rows, cols = m.shape
    if cols != columns:
        raise ValueError(f"gemm_accumulate: `{name}` has {cols} columns, expected {columns}.")
    item = m.itemsize
    if rows > 1 and (m.strides[0] % item or m.strides[0] < cols * item):
        raise ValueError(f"gemm_accumulate: rows of `{name}` must not overlap, got strides "
                         f"{m.strides}.")
    if cols > 1 and m.strides[1] != item:
        raise ValueError(f"gemm_accumulate: `{name}` needs unit column stride, got strides "
                         f"{m.strides}.")
    return max(cols, m.strides[0] // item if rows > 1 else cols, 1)


def gemm_accumulate(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float) -> None:
    """``c[...] = a @ b + beta * c`` through BLAS, in place.

    Parameters
    ----------
    a : ndarray, shape (M, K)
    b : ndarray, shape (K, N)
    c : ndarray, shape (M, N), written
        All float32 or all float64; each with unit column stride and
        non-overlapping rows (any row stride).  With ``beta = 0`` the old
        content of `c` is never read.
    beta : float
    """
    dtype = c.dtype
    if a.dtype != dtype or b.dtype != dtype or dtype not in _GEMM:
        raise TypeError(f"gemm_accumulate: operands must all be float32 or all float64, got "
                        f"{a.dtype}, {b.dtype}, {c.dtype}.")
    m, k = a.shape
    n = c.shape[1]
    if b.shape[0] != k or c.shape[0] != m:
        raise ValueError(f"gemm_accumulate: shapes {a.shape} @ {b.shape} -> {c.shape} "
                         f"do not match.")
    if m == 0 or n == 0:
        return
    lda, ldb, ldc = _row_stride(a, k, "a"), _row_stride(b, n, "b"), _row_stride(c, n, "c")
    alpha, beta_ = np.ones(1, dtype), np.full(1, beta, dtype)
    # Row-major c = a @ b is column-major c^T = b^T @ a^T: BLAS sees b first.
    ints = [ctypes.c_int(v) for v in (n, m, k, ldb, lda, ldc)]
    n_, m_, k_, ldb_, lda_, ldc_ = (ctypes.byref(v) for v in ints)
    _GEMM[dtype](_NO_TRANSPOSE, _NO_TRANSPOSE, n_, m_, k_, alpha.ctypes.data, b.ctypes.data,
                 ldb_, a.ctypes.data, lda_, beta_.ctypes.data, c.ctypes.data, ldc_)
