"""Makes a folder of ImageNet-sized JPEGs (about 500x375) for the data-pipeline benchmark.

The photographs are the two that scikit-learn ships (`sklearn.datasets.load_sample_images`:
`china.jpg` and `flower.jpg`, 640x427), so nothing is downloaded. Each output is a random
crop of one of them (55-100% of each side), optionally mirrored, resized with Pillow's
bicubic filter to 500x375 (landscape) or 375x500 (portrait, one in four), and saved as a
JPEG of quality 90 (ImageNet's typical encoding), like the images MMSelfSup reads.

    .venv-reference/bin/python tools/make_bench_jpegs.py /tmp/selfsup_bench_jpegs --count 256

Deterministic for a given `--seed`. Used by `crates/selfsup-data/examples/bench_pipeline.rs`
and `tools/bench_torchvision_pipeline.py`.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output folder (created; existing files are overwritten)")
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    photos = [Image.fromarray(a) for a in load_sample_images().images]
    rs = np.random.RandomState(args.seed)
    for k in range(args.count):
        src = photos[k % len(photos)]
        w, h = src.size
        cw, ch = int(w * rs.uniform(0.55, 1.0)), int(h * rs.uniform(0.55, 1.0))
        x, y = rs.randint(0, w - cw + 1), rs.randint(0, h - ch + 1)
        img = src.crop((x, y, x + cw, y + ch))
        if rs.rand() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        size = (375, 500) if k % 4 == 3 else (500, 375)
        img = img.resize(size, Image.Resampling.BICUBIC)
        img.save(os.path.join(args.out, f"img_{k:04d}.jpg"), quality=90)
    print(f"wrote {args.count} JPEGs to {args.out}")


if __name__ == "__main__":
    main()
