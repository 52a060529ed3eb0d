"""Outputs of MMSelfSup 1.0.0's data preprocessors on fixed random views.

    .venv-reference/bin/python tools/gen_preprocessor_fixture.py --out tests/fixtures/preprocessors

For each of SelfSupDataPreprocessor, TwoNormDataPreprocessor,
CAEDataPreprocessor, RelativeLocDataPreprocessor and
RotationPredDataPreprocessor it builds the preprocessor from a config dict
(``bgr_to_rgb=True``, ImageNet statistics, BEiT v2's second statistics for
TwoNorm), feeds it uint8 views of 2 samples, 3 channels, 4x3 pixels (9 views
for RelativeLoc, 4 for RotationPred, 2 otherwise) and writes
``cases.json``: per case the config, the views as our RGB loader would give
them (``raw_rgb``, the reference is fed the BGR flip, as mmcv decodes) and
every output tensor with its shape.
"""
import argparse
import json
import os

import pin_cpu_kernels  # noqa: F401  (AVX2 kernels; before torch, see that file)
import torch
from mmselfsup.registry import MODELS
from mmselfsup.utils import register_all_modules

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
CASES = [
    ('SelfSupDataPreprocessor', 2, {}),
    ('TwoNormDataPreprocessor', 2, dict(second_mean=[127.5, 127.5, 127.5], second_std=[127.5, 127.5, 127.5])),
    ('CAEDataPreprocessor', 2, {}),
    ('RelativeLocDataPreprocessor', 9, {}),
    ('RotationPredDataPreprocessor', 4, {}),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    args = p.parse_args()
    register_all_modules()
    g = torch.Generator().manual_seed(0)
    out = {}
    for kind, views, extra in CASES:
        cfg = dict(type=kind, mean=MEAN, std=STD, bgr_to_rgb=True, **extra)
        pre = MODELS.build(dict(cfg))
        raw_rgb = [torch.randint(0, 256, (2, 3, 4, 3), generator=g, dtype=torch.uint8) for _ in range(views)]
        data = dict(inputs=[v.flip(1) for v in raw_rgb], data_samples=None)
        inputs, _ = pre(data, training=True)
        out[kind] = dict(
            config=cfg,
            raw_rgb=[dict(shape=list(v.shape), data=v.flatten().tolist()) for v in raw_rgb],
            outputs=[dict(shape=list(t.shape), data=t.flatten().tolist()) for t in inputs],
        )
        print(kind, [list(t.shape) for t in inputs])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'cases.json'), 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':
    main()
