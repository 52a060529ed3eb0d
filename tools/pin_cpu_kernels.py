"""Pin torch's CPU kernels to AVX2 so that the fixtures are bit-reproducible across machines.

Import this module BEFORE torch (every fixture generator in tools/ does, as its first
project import):

    import pin_cpu_kernels  # noqa: F401,E402  (before torch)

Why: the float32 results of the same reference code differ in the last bits between an AVX2
and an AVX-512 CPU, because torch picks different kernels at run time:

- ``ONEDNN_MAX_CPU_ISA``: oneDNN's convolutions (the ResNets of the contrastive fixtures).
  Without the pin, an AVX-512 machine changes ~1e-7 of the conv weight gradients and, through
  them, BN running statistics and everything downstream.
- ``ATEN_CPU_CAPABILITY``: ATen's own vectorised kernels (softmax, LayerNorm, GELU, reductions:
  the ViTs of the MAE and MoCo v3 fixtures).
- ``MKL_ENABLE_INSTRUCTIONS``: MKL's sgemm (Linear layers) on Intel CPUs with AVX-512.

The committed fixtures were produced with AVX2 kernels; with these three settings an AVX-512
machine reproduces them byte for byte (checked on an AMD EPYC with AVX-512: without
``ONEDNN_MAX_CPU_ISA`` the contrastive fixtures differ, without ``ATEN_CPU_CAPABILITY`` the MAE
fixtures differ). The values are forced, not defaulted, so that a stray setting in the caller's
environment cannot change the fixtures; ``tools/fixtures.py --check`` is the test.
"""

import os
import sys

PINS = {
    'ATEN_CPU_CAPABILITY': 'avx2',
    'ONEDNN_MAX_CPU_ISA': 'AVX2',
    'MKL_ENABLE_INSTRUCTIONS': 'AVX2',
}

if 'torch' in sys.modules:
    raise RuntimeError('pin_cpu_kernels must be imported before torch: the kernel '
                       'choice is read when torch loads')
os.environ.update(PINS)
