"""Golden outputs of MMSelfSup's masked-image-modelling and pretext transforms.

Writes `crates/selfsup-data/tests/testdata/mim_golden.json`, read by
`crates/selfsup-data/tests/mim_parity.rs`. Run with the reference environment
(MMSelfSup 1.0.0, mmcv 2.0.1, OpenCV):

    nice -n 10 .venv-reference/bin/python tools/gen_mask_fixtures.py

Covers `BEiTMaskGenerator`, `SimMIMMaskGenerator`,
`RandomResizedCropAndInterpolationWithTwoPic`, `RandomRotation`, `RotationWithLabels` and
`RandomPatchWithLabels`, built through MMSelfSup's registry. Helpers (channel order, fixed
draws, image encoding) come from `gen_transform_fixtures.py`; images are RGB, reversed to BGR
for the reference and back.

- Mask generators: a few masks with the reference's **own** draws recorded (Python's
  `random` seeded; every `random.uniform`/`random.randint` call logged) for exact replay, and
  statistics over many masks (blocks per mask, attempts, block sizes and aspect ratios,
  per-patch masking frequency) for a distribution check against our RNG.
- SimMIM: NumPy's permutation replaced by a logged Fisher-Yates shuffle (the same algorithm).
- Geometry: fixed crop windows, angles and patch offsets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pin_cpu_kernels  # noqa: E402,F401  (AVX2 kernels; before torch, see that file)
import gen_transform_fixtures as g  # noqa: E402  (registers MMSelfSup's modules)
from mmselfsup.datasets.transforms import processing as mm_processing  # noqa: E402
from mmselfsup.registry import TRANSFORMS  # noqa: E402

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "crates",
    "selfsup-data",
    "tests",
    "testdata",
    "mim_golden.json",
)


class Recorder:
    """Wraps `random.uniform`/`random.randint` to log the values they return, in the form
    `RandomSource` replays: `{"u": x}` and `{"i": k}` (inclusive `randint(a, b)` is Rust's
    `randint(a, b + 1)`, same value)."""

    def __enter__(self):
        self.log = []
        self.saved = (random.uniform, random.randint)
        uniform, randint = self.saved

        def rec_uniform(a, b):
            v = uniform(a, b)
            self.log.append({"u": v})
            return v

        def rec_randint(a, b):
            v = randint(a, b)
            self.log.append({"i": v})
            return v

        random.uniform, random.randint = rec_uniform, rec_randint
        return self

    def __exit__(self, *exc):
        random.uniform, random.randint = self.saved


def beit_stats(t, n: int, seed: int) -> dict:
    """Statistics of `n` masks of the reference generator `t` (Python `random` seeded)."""
    random.seed(seed)
    h, w = t.get_shape()
    blocks_per_mask, attempts_per_mask, added, heights, widths, aspects = [], [], [], [], [], []
    freq = np.zeros((h, w))
    counts = set()
    orig = t._mask

    for _ in range(n):
        state = dict(attempts=0, blocks=0)
        uniform = random.uniform

        def counting_uniform(a, b, _u=uniform):
            state["attempts"] += 0.5  # two uniform draws per attempt
            return _u(a, b)

        def counting_mask(mask, max_mask_patches):
            before = mask.copy()
            delta = orig(mask, max_mask_patches)
            if delta > 0:
                state["blocks"] += 1
                added.append(int(delta))
                ys, xs = np.nonzero(mask != before)
                # The block's bounding box is at least the newly masked cells' box; record
                # the new cells' box extents (exact for non-overlapping blocks).
                heights.append(int(ys.max() - ys.min() + 1))
                widths.append(int(xs.max() - xs.min() + 1))
            return delta

        random.uniform = counting_uniform
        t._mask = counting_mask
        try:
            m = t.transform({})["mask"]
        finally:
            random.uniform = uniform
            t._mask = orig
        counts.add(int(m.sum()))
        freq += m
        blocks_per_mask.append(state["blocks"])
        attempts_per_mask.append(state["attempts"])
    hist = np.bincount(blocks_per_mask)
    return dict(
        n=n,
        counts=sorted(counts),
        blocks_mean=float(np.mean(blocks_per_mask)),
        blocks_std=float(np.std(blocks_per_mask)),
        blocks_hist=[int(x) for x in hist],
        attempts_mean=float(np.mean(attempts_per_mask)),
        attempts_std=float(np.std(attempts_per_mask)),
        added_mean=float(np.mean(added)),
        added_std=float(np.std(added)),
        num_blocks=len(added),
        new_cells_height_max=int(max(heights)),
        new_cells_width_max=int(max(widths)),
        freq=[float(x) for x in (freq / n).reshape(-1)],
    )


def beit_cases() -> list[dict]:
    configs = [
        # MMSelfSup's BEiT / CAE / BEiT v2 settings.
        dict(input_size=(14, 14), num_masking_patches=75, max_num_patches=None, min_num_patches=16),
        dict(input_size=(14, 14), num_masking_patches=75, max_num_patches=75, min_num_patches=16),
        # A small, non-square grid with the other defaults.
        dict(input_size=(6, 9), num_masking_patches=20, min_num_patches=4, min_aspect=0.5, max_aspect=3.0),
    ]
    out = []
    for k, cfg in enumerate(configs):
        t = TRANSFORMS.build(dict(type="BEiTMaskGenerator", **cfg))
        replays = []
        for s in range(6):
            random.seed(1000 * k + s)
            with Recorder() as r:
                m = t.transform({})["mask"]
            replays.append(dict(draws=r.log, mask=[int(v) for v in m.reshape(-1)]))
        cfg_json = dict(cfg, type="BEiTMaskGenerator", input_size=list(cfg["input_size"]))
        if cfg_json.get("max_num_patches") is None:
            cfg_json.pop("max_num_patches", None)
        out.append(dict(config=cfg_json, shape=list(t.get_shape()), replays=replays, stats=beit_stats(t, 4000, 77 + k)))
    return out


def simmim_cases() -> list[dict]:
    out = []
    for cfg in (dict(), dict(input_size=96, mask_patch_size=16, model_patch_size=8, mask_ratio=0.75)):
        t = TRANSFORMS.build(dict(type="SimMIMMaskGenerator", **cfg))
        rs = np.random.RandomState(5)
        for _ in range(3):
            swaps = []

            def permutation(n):
                x = list(range(n))
                for i in range(n - 1, 0, -1):
                    j = int(rs.randint(0, i + 1))
                    swaps.append(j)
                    x[i], x[j] = x[j], x[i]
                return np.array(x)

            saved = np.random.permutation
            np.random.permutation = permutation
            try:
                m = t.transform({})["mask"]
            finally:
                np.random.permutation = saved
            out.append(
                dict(
                    config=dict(type="SimMIMMaskGenerator", **cfg),
                    draws=[{"i": j} for j in swaps],
                    shape=list(m.shape),
                    mask=[int(v) for v in m.reshape(-1)],
                )
            )
    return out


def patch_input() -> np.ndarray:
    """An 80x70 RGB image (w x h), non-square to exercise RelativeLoc's cell arithmetic."""
    y, x = np.mgrid[0:70, 0:80]
    return np.stack([(x * 3) % 256, (y * 3) % 256, (x * y) % 251], axis=-1).astype(np.uint8)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT, help=f"output file (default: the committed {os.path.relpath(OUT)})")
    return ap.parse_args(argv)


def main() -> None:
    out_path = parse_args().out
    inputs = g.make_inputs() + [patch_input()]
    cases: list[dict] = []

    def add(kind: str, input_idx: int, out, **params) -> None:
        cases.append(dict(kind=kind, input=input_idx, **params, out=g.encode(out)))

    # RandomResizedCropAndInterpolationWithTwoPic: fixed windows, each interpolation name, and
    # sizes that shrink by an integer factor, shrink by a fraction, grow, and do both.
    two_pic = [
        ((20, 16), "bicubic", (10, 8), "lanczos", [3, 7]),
        ((20, 16), "bicubic", (7, 5), "bilinear", [0, 2]),
        ((20, 16), "bicubic", (30, 24), "bicubic", [13, 9]),
        ((20, 16), "bicubic", (25, 10), "lanczos", [5, 5]),
        ((20, 16), "bilinear", (13, 11), "lanczos", [10, 1]),
        ((24, 24), "lanczos", (40, 33), "bicubic", [5, 10]),
    ]
    for (cw, ch), interp, size, second_interp, (top, left) in two_pic:
        area = cw * ch / (37 * 29)
        aspect = math.log(cw / ch)
        # sqrt(area*37*29*exp(aspect)) = cw exactly when aspect = ln(cw/ch).
        draws = [("uniform", area), ("uniform", aspect), ("randint", top), ("randint", left)]
        second = (9, 7)
        cfg = dict(
            type="RandomResizedCropAndInterpolationWithTwoPic",
            size=size,
            second_size=second,
            interpolation=interp,
            second_interpolation=second_interp,
        )
        t = TRANSFORMS.build(cfg)
        with g.fixed_draws(draws):
            res = t(dict(img=g.to_bgr(inputs[0])))
        first, sec = res["img"]
        crop = dict(top=top, left=left, height=ch, width=cw)
        cfg_json = dict(cfg, size=list(size), second_size=list(second))
        add("two_pic", 0, g.to_rgb(first), config=cfg_json, crop=crop, draws=g.rust_draws(draws))
        add("two_pic_second", 0, g.to_rgb(sec), config=cfg_json, crop=crop)

    # RandomRotation: fixed angles (its torch draw replaced), every interpolation.
    rotations = [
        (dict(degrees=45), 30.0),
        (dict(degrees=45, interpolation="bilinear"), 30.0),
        (dict(degrees=45, interpolation="bicubic"), -17.3),
        (dict(degrees=45, interpolation="lanczos"), 12.5),
        (dict(degrees=45, interpolation="area"), 61.0),
        (dict(degrees=[80, 100], interpolation="bilinear"), 90.0),
        (dict(degrees=180, expand=True), 33.0),
        (dict(degrees=180, interpolation="bilinear", expand=True), -120.7),
        (dict(degrees=10, interpolation="bilinear", center=(5.0, 20.5)), 7.0),
        (dict(degrees=10, interpolation="bilinear", fill=200), 9.5),
        (dict(degrees=10, fill=77), -4.0),
    ]
    saved = mm_processing.RandomRotation.get_params
    try:
        for cfg, angle in rotations:
            for i in (0, 1):
                mm_processing.RandomRotation.get_params = staticmethod(lambda degrees, a=angle: a)
                t = TRANSFORMS.build(dict(type="RandomRotation", **cfg))
                out = t(dict(img=g.to_bgr(inputs[i])))["img"]
                cfg_json = dict(cfg, type="RandomRotation")
                if "center" in cfg_json:
                    cfg_json["center"] = list(cfg_json["center"])
                add("rotation", i, g.to_rgb(out), config=cfg_json, angle=angle)
    finally:
        mm_processing.RandomRotation.get_params = saved

    # RotationWithLabels.
    for i in (0, 1):
        res = TRANSFORMS.build(dict(type="RotationWithLabels"))(dict(img=g.to_bgr(inputs[i])))
        assert list(res["rot_label"]) == [0, 1, 2, 3]
        for k, img in enumerate(res["img"]):
            add("rotation_with_labels", i, g.to_rgb(img), view=k)

    # RandomPatchWithLabels on the 80x70 input: fixed offsets inside each cell.
    rs = np.random.RandomState(11)
    t = TRANSFORMS.build(dict(type="RandomPatchWithLabels"))
    img = inputs[2]
    h_grid, w_grid = 70 // 3, 80 // 3
    draws = []
    for i in range(3):
        for j in range(3):
            cell_w = min((i + 1) * h_grid, 79) - i * h_grid + 1
            cell_h = min((j + 1) * w_grid, 69) - j * w_grid + 1
            draws.append(("randint", int(rs.randint(0, cell_h - (h_grid - 21) + 1))))
            draws.append(("randint", int(rs.randint(0, cell_w - (w_grid - 21) + 1))))
    with g.fixed_draws(draws):
        res = t(dict(img=g.to_bgr(img)))
    for k, p in enumerate(res["img"]):
        add("patch", 2, g.to_rgb(p), view=k, draws=g.rust_draws(draws))
    patch_meta = dict(
        draws=g.rust_draws(draws),
        patch_label=[int(v) for v in res["patch_label"].reshape(-1)],
        patch_label_shape=list(res["patch_label"].shape),
        patch_box=[int(v) for v in res["patch_box"].reshape(-1)],
        patch_box_shape=list(res["patch_box"].shape),
        unpatched_img_shape=list(res["unpatched_img"].shape),
    )

    golden = dict(
        generator="tools/gen_mask_fixtures.py",
        inputs=[g.encode(im) for im in inputs],
        beit=beit_cases(),
        simmim=simmim_cases(),
        cases=cases,
        patch_meta=patch_meta,
    )
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases, {os.path.getsize(out_path)} bytes -> {os.path.relpath(out_path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
