#!/usr/bin/env python
"""Golden outputs of mmcls 1.0.0rc6's ``RandAugment``, ``AutoAugment`` and their operations.

    .venv-reference/bin/python tools/gen_rand_augment_fixture.py \
        --out crates/selfsup-data/tests/testdata/rand_augment_golden.json

Every case runs the real transform (``mmcls/datasets/transforms/auto_augment.py``, on top of
mmcv 2.0.1's cv2-backend ``imshear``, ``imtranslate``, ``imrotate``, ``auto_contrast``,
``imequalize``, ``posterize``, ``adjust_*`` and ``cutout``) on one of a few seeded 12x16
images, with ``np.random`` seeded, and records every draw it makes in call order
(``np.random.rand``, ``uniform``, ``normal``, ``randint`` and ``choice``, the last as one
``int`` per element). mmcls's images are BGR: a case stores the index of its RGB input
(``inputs``) and the RGB result, the transform having seen ``input[..., ::-1]``. The Rust side
replays the draws and must give the same bytes.

The cases: each operation with a fixed magnitude and with a ranged one (``magnitude_std`` a
number, 0 and ``'inf'``), both directions and several interpolations for the geometric ones,
the ``pad_val`` forms (an int, which ``imrotate`` hands to OpenCV as ``(v, 0, 0)``, and a BGR
triple), negative factors, a posterize to 0 bits; then ``RandAugment`` with the fine-tuning
recipe's settings (``timm_increasing``, 2 policies, level 9, std 0.5, the recipe's
``hparams``) and with custom policies, and ``AutoAugment``'s ``imagenet`` policies.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pin_cpu_kernels  # noqa: E402,F401
import numpy as np  # noqa: E402
from mmcls.datasets.transforms import AutoAugment, RandAugment  # noqa: E402
from mmcls.registry import TRANSFORMS  # noqa: E402

H, W = 12, 16
RECIPE = dict(policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
              magnitude_std=0.5, hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic'))


def inputs():
    """Three RGB images: uniform noise, a smooth low-contrast gradient, a blocky one."""
    rng = np.random.RandomState(2024)
    noise = rng.randint(0, 256, (H, W, 3)).astype(np.uint8)
    y, x = np.mgrid[0:H, 0:W]
    grad = np.stack([60 + 5 * x + 2 * y, 90 + 3 * y + x, 150 - 4 * x + y], -1)
    grad = (grad + rng.randint(0, 6, (H, W, 3))).clip(0, 255).astype(np.uint8)
    blocks = ((x // 4 + y // 3) % 3)[..., None] * np.array([90, 40, 120]) + 20
    blocks = (blocks + rng.randint(0, 3, (H, W, 3))).astype(np.uint8)
    return [noise, grad, blocks]


def op_cases():
    cases = []
    for img in range(3):
        cases += [
            ('AutoContrast', dict(prob=1.0), img),
            ('Equalize', dict(prob=1.0), img),
            ('Invert', dict(prob=1.0), img),
        ]
    for mag in (0.3, -0.5, 0.9):
        for op in ('Contrast', 'ColorTransform', 'Brightness', 'Sharpness'):
            cases.append((op, dict(magnitude=mag, prob=1.0), 0 if mag > 0 else 1))
            cases.append((op, dict(magnitude=mag, prob=1.0, random_negative_prob=1.0), 2))
    cases += [
        ('Solarize', dict(thr=100, prob=1.0), 0),
        ('Solarize', dict(thr=256 / 9 * 4, prob=1.0), 1),
        ('SolarizeAdd', dict(magnitude=37.7, prob=1.0), 0),
        ('SolarizeAdd', dict(magnitude=110, thr=150, prob=1.0), 1),
        ('Posterize', dict(bits=3, prob=1.0), 0),
        ('Posterize', dict(bits=0, prob=1.0), 2),
        ('Cutout', dict(shape=5, prob=1.0), 0),
        ('Cutout', dict(shape=(3, 7), pad_val=(10, 20, 30), prob=1.0), 1),
    ]
    for interp in ('nearest', 'bilinear', 'bicubic'):
        for d in ('horizontal', 'vertical'):
            cases.append(('Shear', dict(magnitude=0.27, direction=d, interpolation=interp, prob=1.0), 0))
            cases.append(('Translate', dict(magnitude=0.31, direction=d, interpolation=interp,
                                            pad_val=[104, 116, 124], prob=1.0), 1))
        cases.append(('Rotate', dict(angle=23.5, interpolation=interp, prob=1.0), 2))
        cases.append(('Rotate', dict(angle=17.0, interpolation=interp, pad_val=(1, 2, 3), prob=1.0,
                                     center=(4.0, 5.5), scale=1.2), 0))
    cases.append(('Shear', dict(magnitude=0.2, pad_val=7, prob=1.0), 2))
    # Ranged magnitudes: the RandAugment path of every operation, three kinds of noise.
    ranged = [('Rotate', (0, 30)), ('Posterize', (4, 0)), ('Solarize', (256, 0)), ('SolarizeAdd', (0, 110)),
              ('ColorTransform', (0, 0.9)), ('Contrast', (0, 0.9)), ('Brightness', (0, 0.9)),
              ('Sharpness', (0, 0.9)), ('Shear', (0, 0.3)), ('Translate', (0, 0.45)), ('Cutout', (1, 8))]
    for i, (op, rng) in enumerate(ranged):
        for std in (0.5, 0, 'inf'):
            cases.append((op, dict(magnitude_range=rng, magnitude_level=7, magnitude_std=std, prob=0.9), i % 3))
    # Disabled draws.
    cases.append(('Rotate', dict(angle=10.0, prob=0.0), 0))
    cases.append(('Equalize', dict(prob=0.0), 0))
    return cases


def wrapper_cases():
    cases = []
    for seed in range(12):
        cases.append(('RandAugment', dict(RECIPE), seed % 3))
    cases.append(('RandAugment', dict(policies='timm_increasing', num_policies=3, magnitude_level=6), 0))
    cases.append(('RandAugment', dict(policies='timm_increasing', num_policies=2, magnitude_level=10,
                                      magnitude_std='inf', total_level=10), 1))
    custom = [dict(type='AutoContrast', prob=1.0), dict(type='Rotate', magnitude_range=(0, 30)),
              dict(type='ColorTransform', magnitude_range=(0, 0.9), magnitude_key='magnitude'),
              dict(type='Cutout', magnitude_range=(2, 6))]
    for seed in range(3):
        cases.append(('RandAugment', dict(policies=custom, num_policies=2, magnitude_level=5,
                                          magnitude_std=1.0), seed))
    for seed in range(6):
        cases.append(('AutoAugment', dict(policies='imagenet'), seed % 3))
    cases.append(('AutoAugment', dict(policies=[[dict(type='Posterize', bits=4, prob=1.0),
                                                 dict(type='Rotate', angle=30.0, prob=1.0)]],
                                      hparams=dict(pad_val=[104, 116, 124], interpolation='bilinear')), 2))
    return cases


class Recorder:

    NAMES = ('rand', 'uniform', 'normal', 'randint', 'choice')

    def __init__(self):
        self.draws = []
        self.orig = {n: getattr(np.random, n) for n in self.NAMES}

    def _wrap(self, name, kind):
        f = self.orig[name]

        def g(*a, **k):
            v = f(*a, **k)
            for x in np.asarray(v).reshape(-1):
                self.draws.append([kind, int(x) if kind == 'int' else float(x)])
            return v
        return g

    def __enter__(self):
        kinds = dict(rand='uniform', uniform='uniform', normal='normal', randint='int', choice='int')
        for n in self.NAMES:
            setattr(np.random, n, self._wrap(n, kinds[n]))
        return self

    def __exit__(self, *a):
        for n, f in self.orig.items():
            setattr(np.random, n, f)


def jsonable(v):
    if isinstance(v, tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='crates/selfsup-data/tests/testdata/rand_augment_golden.json')
    args = ap.parse_args()
    imgs = inputs()
    cases = []
    for seed, (name, cfg, img) in enumerate(op_cases() + wrapper_cases()):
        np.random.seed(1000 + seed)
        if name == 'RandAugment':
            t = RandAugment(**cfg)
        elif name == 'AutoAugment':
            t = AutoAugment(**cfg)
        else:
            t = TRANSFORMS.build(dict(type=name, **cfg))
        with Recorder() as rec:
            out = t.transform(dict(img=imgs[img][..., ::-1].copy()))['img']
        assert out.shape == (H, W, 3) and out.dtype == np.uint8, (name, cfg)
        cases.append(dict(type=name, config=jsonable(cfg), input=img,
                          output=out[..., ::-1].reshape(-1).tolist(), draws=rec.draws))
    with open(args.out, 'w') as f:
        f.write('{"generator": "tools/gen_rand_augment_fixture.py", "height": %d, "width": %d,\n' % (H, W))
        f.write('"inputs": [\n' + ',\n'.join(json.dumps(i.reshape(-1).tolist()) for i in imgs) + '],\n')
        f.write('"cases": [\n' + ',\n'.join(json.dumps(c, separators=(',', ':')) for c in cases) + '\n]}\n')
    json.load(open(args.out))
    print(f'{len(cases)} cases -> {args.out}')


if __name__ == '__main__':
    main()
