#!/usr/bin/env python
"""Golden outputs of mmcls 1.0.0rc6's ``RandomErasing``.

    .venv-reference/bin/python tools/gen_random_erasing_fixture.py \
        --out crates/selfsup-data/tests/testdata/random_erasing_golden.json

Each case runs the real transform (``mmcls.datasets.transforms.RandomErasing``)
on a seeded 9x13 image with ``np.random`` seeded, recording every draw it makes
in call order (``np.random.rand``, scalar and array ``np.random.uniform``,
``np.random.randint``, array ``np.random.normal``; arrays flattened in their
(row, column, channel) order). mmcls's images are BGR: the case stores the RGB
image (``input``) and the RGB result (``output``), the transform having seen
``input[..., ::-1]``; the draws are replayed by the Rust side, which must give
the same bytes.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pin_cpu_kernels  # noqa: E402,F401
import numpy as np  # noqa: E402
from mmcls.datasets.transforms import RandomErasing  # noqa: E402

H, W = 9, 13
CASES = [
    ('const_default', dict(erase_prob=1.0), 1),
    ('const_color', dict(erase_prob=1.0, fill_color=(10, 200, 90), min_area_ratio=0.2, max_area_ratio=0.6), 2),
    ('rand_uniform', dict(erase_prob=1.0, mode='rand'), 3),
    ('rand_normal_ft_recipe', dict(
        erase_prob=1.0, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
        fill_color=[103.53, 116.28, 123.675], fill_std=[57.375, 57.12, 58.395]), 4),
    ('aspect_float', dict(erase_prob=1.0, aspect_range=0.5, mode='rand', fill_std=30.0, fill_color=128.0), 5),
    ('skipped', dict(erase_prob=0.25), 6),
]


class Recorder:

    def __init__(self):
        self.draws = []
        self.orig = (np.random.rand, np.random.uniform, np.random.randint, np.random.normal)

    def __enter__(self):
        rand, uniform, randint, normal = self.orig

        def r(*a):
            v = rand(*a)
            self.draws.append(['uniform', float(v)])
            return v

        def u(*a, **k):
            v = uniform(*a, **k)
            for x in np.asarray(v, dtype=np.float64).reshape(-1):
                self.draws.append(['uniform', float(x)])
            return v

        def ri(*a, **k):
            v = randint(*a, **k)
            self.draws.append(['int', int(v)])
            return v

        def n(*a, **k):
            v = normal(*a, **k)
            for x in np.asarray(v, dtype=np.float64).reshape(-1):
                self.draws.append(['normal', float(x)])
            return v

        np.random.rand, np.random.uniform, np.random.randint, np.random.normal = r, u, ri, n
        return self

    def __exit__(self, *a):
        np.random.rand, np.random.uniform, np.random.randint, np.random.normal = self.orig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='crates/selfsup-data/tests/testdata/random_erasing_golden.json')
    args = ap.parse_args()
    cases = []
    for name, cfg, seed in CASES:
        rng = np.random.RandomState(100 + seed)
        rgb = rng.randint(0, 256, (H, W, 3)).astype(np.uint8)
        np.random.seed(seed)
        t = RandomErasing(**cfg)
        with Recorder() as rec:
            out = t.transform(dict(img=rgb[..., ::-1].copy()))['img']
        cases.append(dict(name=name, config=cfg, height=H, width=W,
                          input=rgb.reshape(-1).tolist(),
                          output=out[..., ::-1].reshape(-1).tolist(),
                          draws=rec.draws))
    with open(args.out, 'w') as f:
        f.write('{"generator": "tools/gen_random_erasing_fixture.py", "cases": [\n')
        f.write(',\n'.join(json.dumps(c, separators=(',', ':')) for c in cases))
        f.write('\n]}\n')
    json.load(open(args.out))
    print(f'{len(cases)} cases -> {args.out}')


if __name__ == '__main__':
    main()
