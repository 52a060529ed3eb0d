"""Golden outputs of MMSelfSup's colour, blur, solarize, grayscale, crop and flip transforms.

Writes `crates/selfsup-data/tests/testdata/transforms_golden.json`, read by
`crates/selfsup-data/tests/transforms_parity.rs`. Run with the reference environment
(MMSelfSup 1.0.0, mmcv 2.0.1, Pillow, NumPy, OpenCV):

    nice -n 10 .venv-reference/bin/python tools/gen_transform_fixtures.py

Every output comes from the real implementation: the mmselfsup/mmcv transform classes (built
through MMSelfSup's registry) or the mmcv functions they call. Their random draws are replaced
by fixed values (see `fixed_draws`), and each case records those values so that the Rust
test can feed the same ones to the deterministic functions (`apply_with`, `ReplayDraws`).

Channel order: the reference pipeline holds BGR arrays (mmcv's `imread`), this crate holds
RGB images. Inputs are generated in RGB, reversed to BGR before the reference runs, and the
reference outputs are reversed back to RGB before they are stored, so the fixtures also check
that the Rust transforms are channel-order equivalent (grayscale weights, pad values, ...).

Images are stored as base64 of the HWC uint8 buffer (RGB, or one channel).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import sys
from collections import deque

import pin_cpu_kernels  # noqa: F401  (AVX2 kernels; before torch, see that file)
import cv2
import mmcv
import numpy as np
import PIL
from PIL import Image, ImageFilter
from mmselfsup.registry import TRANSFORMS
from mmselfsup.utils import register_all_modules

register_all_modules(init_default_scope=True)

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "crates",
    "selfsup-data",
    "tests",
    "testdata",
    "transforms_golden.json",
)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def make_inputs() -> list[np.ndarray]:
    """Two RGB images: a 37x29 colourful gradient with noise and saturated patches, and a
    16x12 almost-grey image (channels within a few levels, some exactly grey pixels)."""
    rs = np.random.RandomState(20240601)
    h, w = 29, 37
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = x * 255.0 / (w - 1)
    g = y * 255.0 / (h - 1)
    b = 128.0 + 110.0 * np.sin((x + 2.0 * y) / 5.0)
    a = np.stack([r, g, b], axis=-1) + rs.randint(-25, 26, size=(h, w, 3))
    a[2:6, 3:9] = [255, 255, 255]  # white patch
    a[20:24, 28:34] = [0, 0, 0]  # black patch
    a[10:13, 15:19] = [250, 5, 3]  # saturated red
    a[14:16, 30:36] = [3, 240, 250]  # saturated cyan
    img_a = np.clip(a, 0, 255).astype(np.uint8)

    h, w = 12, 16
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 30.0 + 190.0 * (x + y) / (w + h - 2)
    bg = np.stack([v, v, v], axis=-1) + rs.randint(-3, 4, size=(h, w, 3))
    bg[::3, ::4] = v[::3, ::4, None]  # exactly grey pixels
    img_b = np.clip(bg, 0, 255).astype(np.uint8)
    return [img_a, img_b]


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode()


def encode(img_rgb: np.ndarray) -> dict:
    c = 1 if img_rgb.ndim == 2 else img_rgb.shape[2]
    return dict(w=int(img_rgb.shape[1]), h=int(img_rgb.shape[0]), c=int(c), data=b64(img_rgb))


def to_bgr(img_rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img_rgb[..., ::-1]) if img_rgb.ndim == 3 else img_rgb.copy()


def to_rgb(img_bgr: np.ndarray) -> np.ndarray:
    img_bgr = np.asarray(img_bgr)
    if img_bgr.ndim == 3 and img_bgr.shape[2] == 3:
        return np.ascontiguousarray(img_bgr[..., ::-1])
    if img_bgr.ndim == 3 and img_bgr.shape[2] == 1:
        return img_bgr[..., 0]
    return img_bgr


# --------------------------------------------------------------------------------------------
# Fixed random draws
# --------------------------------------------------------------------------------------------


def numpy_permutation(swaps: list[int]) -> list[int]:
    """`np.random.permutation(4)` with the Fisher-Yates swap indices `swaps` (for i = 3, 2, 1:
    j = swaps[k] in [0, i], swap x[i], x[j]), NumPy's legacy shuffle algorithm. The Rust
    side draws the same indices with `randint(0, i + 1)`."""
    x = [0, 1, 2, 3]
    for i, j in zip((3, 2, 1), swaps):
        assert 0 <= j <= i
        x[i], x[j] = x[j], x[i]
    return x


@contextlib.contextmanager
def fixed_draws(draws: list[tuple[str, object]]):
    """Replaces the random functions the transforms call by a queue of fixed values.

    `draws` entries are `(kind, value)` in call order:
    - `("np.rand", u)`: `np.random.rand()` (RandomApply, RandomGaussianBlur, RandomSolarize);
    - `("np.uniform", v)`: `np.random.uniform(lo, hi)` returns `v` (ColorJitter, blur sigma);
    - `("np.permutation", swaps)`: `np.random.permutation(4)`, see `numpy_permutation`;
    - `("np.choice", u)`: `np.random.choice(a, p=p)` with NumPy's cdf/searchsorted rule;
    - `("random", u)`: `random.random()` (RandomGrayscale);
    - `("uniform", v)`: `random.uniform(lo, hi)` returns `v` (RandomResizedCrop);
    - `("randint", k)`: `random.randint(lo, hi)` returns `k` (RandomResizedCrop, RandomCrop).
    """
    queue = deque(draws)
    saved = dict(
        rand=np.random.rand,
        uniform=np.random.uniform,
        permutation=np.random.permutation,
        choice=np.random.choice,
        random=random.random,
        py_uniform=random.uniform,
        randint=random.randint,
    )

    def pop(kind: str):
        assert queue, f"no fixed draw left for {kind}"
        k, v = queue.popleft()
        assert k == kind, f"expected a {kind} draw, the next fixed one is {k}"
        return v

    def np_rand(*shape):
        assert not shape
        return pop("np.rand")

    def np_uniform(low=0.0, high=1.0, size=None):
        v = pop("np.uniform")
        assert low <= v <= high, (low, v, high)
        return v

    def np_permutation(n):
        assert n == 4
        return np.array(numpy_permutation(pop("np.permutation")))

    def np_choice(a, p=None):
        u = pop("np.choice")
        cdf = np.cumsum(p)
        cdf /= cdf[-1]
        return a[int(np.searchsorted(cdf, u, side="right"))]

    def py_random():
        return pop("random")

    def py_uniform(lo, hi):
        v = pop("uniform")
        assert lo <= v <= hi, (lo, v, hi)
        return v

    def py_randint(lo, hi):
        k = pop("randint")
        assert lo <= k <= hi, (lo, k, hi)
        return k

    np.random.rand = np_rand
    np.random.uniform = np_uniform
    np.random.permutation = np_permutation
    np.random.choice = np_choice
    random.random = py_random
    random.uniform = py_uniform
    random.randint = py_randint
    try:
        yield
        assert not queue, f"unused fixed draws: {list(queue)}"
    finally:
        np.random.rand = saved["rand"]
        np.random.uniform = saved["uniform"]
        np.random.permutation = saved["permutation"]
        np.random.choice = saved["choice"]
        random.random = saved["random"]
        random.uniform = saved["py_uniform"]
        random.randint = saved["randint"]


def rust_draws(draws: list[tuple[str, object]]) -> list[dict]:
    """The same draws in the order and form `RandomSource` requests them: `{"u": x}` for a
    uniform/probability draw, `{"i": k}` for an integer draw. A Python `randint(lo, hi)`
    (inclusive) is the Rust `randint(lo, hi + 1)`; a permutation is three integer draws."""
    out = []
    for kind, v in draws:
        if kind == "np.permutation":
            out.extend({"i": int(j)} for j in v)
        elif kind == "randint":
            out.append({"i": int(v)})
        else:
            out.append({"u": float(v)})
    return out


def run(cfg: dict, img_rgb: np.ndarray, draws: list[tuple[str, object]]) -> np.ndarray:
    """Builds `cfg` with MMSelfSup's registry and runs it on the BGR version of `img_rgb`."""
    t = TRANSFORMS.build(cfg)
    with fixed_draws(draws):
        res = t(dict(img=to_bgr(img_rgb)))
    return to_rgb(res["img"])


# --------------------------------------------------------------------------------------------
# Exhaustive checks of Pillow's colour primitives, as checksums
# --------------------------------------------------------------------------------------------

CHECKSUM_K = 0x9E3779B97F4A7C15


def checksum(a: np.ndarray) -> int:
    """`sum(v[i] * (i + 1) * K) mod 2**64` over the flattened bytes, K = 0x9E3779B97F4A7C15
    (computed in chunks; NumPy's uint64 arithmetic wraps)."""
    flat = np.ascontiguousarray(a).reshape(-1)
    total = np.uint64(0)
    k = np.uint64(CHECKSUM_K)
    step = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, flat.size, step):
            v = flat[start : start + step].astype(np.uint64)
            w = np.arange(start + 1, start + 1 + v.size, dtype=np.uint64) * k
            total = total + np.sum(v * w, dtype=np.uint64)
    return int(total)


def exhaustive_checksums() -> dict:
    """Every 24-bit colour through Pillow's RGB→HSV, HSV→RGB and RGB→L conversions (a
    4096x4096 image whose pixel p has bytes (p >> 16, p >> 8 & 255, p & 255)), and every pair
    of 8-bit values through `Image.blend` for a few alphas (256x256 'L' images, first = row,
    second = column)."""
    p = np.arange(1 << 24, dtype=np.uint32)
    all_colours = np.stack([(p >> 16) & 255, (p >> 8) & 255, p & 255], axis=-1).astype(np.uint8)
    all_colours = all_colours.reshape(4096, 4096, 3)
    as_rgb = Image.fromarray(all_colours, "RGB")
    out = dict(
        rgb_to_hsv=checksum(np.array(as_rgb.convert("HSV"))),
        hsv_to_rgb=checksum(np.array(Image.frombytes("HSV", (4096, 4096), all_colours.tobytes()).convert("RGB"))),
        rgb_to_l=checksum(np.array(as_rgb.convert("L"))),
    )
    rows, cols = np.mgrid[0:256, 0:256].astype(np.uint8)
    im1, im2 = Image.fromarray(rows, "L"), Image.fromarray(cols, "L")
    out["blend"] = [
        dict(alpha=a, checksum=checksum(np.array(Image.blend(im1, im2, a))))
        for a in (0.123, 0.5, 0.77, 0.999, 1.0001, 1.37, 1.8, 2.5)
    ]
    return out


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT, help=f"output file (default: the committed {os.path.relpath(OUT)})")
    return ap.parse_args(argv)


def main() -> None:
    out_path = parse_args().out
    inputs = make_inputs()
    cases: list[dict] = []

    def add(kind: str, input_idx: int, out: np.ndarray, **params) -> None:
        cases.append(dict(kind=kind, input=input_idx, **params, out=encode(out)))

    both = range(len(inputs))

    # mmcv's photometric functions, as ColorJitter calls them (backend='pillow').
    for i in both:
        for f in (0.3, 1.0, 1.7):
            add("brightness", i, to_rgb(mmcv.adjust_brightness(to_bgr(inputs[i]), f, backend="pillow")), factor=f)
        for f in (0.0, 0.45, 1.8):
            add("contrast", i, to_rgb(mmcv.adjust_contrast(to_bgr(inputs[i]), f, backend="pillow")), factor=f)
        for f in (0.0, 0.6, 1.75):
            add("saturation", i, to_rgb(mmcv.adjust_color(to_bgr(inputs[i]), f, backend="pillow")), factor=f)
        for f in (-0.5, -0.17, -0.002, 0.0, 0.1, 0.5):
            add("hue", i, to_rgb(mmcv.adjust_hue(to_bgr(inputs[i]), f, backend="pillow")), factor=f)

    # The ColorJitter transform with fixed order and factors.
    jitters = [
        (dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2), [0, 2, 1], [1.55, 0.41, 1.23, -0.13]),
        (dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1), [3, 0, 1], [0.72, 1.38, 0.91, 0.07]),
        (dict(brightness=0.4, saturation=0.4), [1, 1, 1], [1.31, 0.64]),
        (dict(contrast=[0.5, 0.6], hue=[-0.5, -0.4]), [2, 2, 0], [0.55, -0.45]),
    ]
    for i in both:
        for cfg, swaps, factors in jitters:
            draws = [("np.permutation", swaps)] + [("np.uniform", f) for f in factors]
            out = run(dict(type="ColorJitter", **cfg), inputs[i], draws)
            add(
                "color_jitter",
                i,
                out,
                config=dict(type="ColorJitter", **cfg),
                order=numpy_permutation(swaps),
                draws=rust_draws(draws),
            )

    # RandomGrayscale (mmcv), applied (random.random() = 0 < prob).
    grays = [
        dict(prob=0.2, keep_channels=True, channel_weights=[0.114, 0.587, 0.2989]),
        dict(prob=0.2, keep_channels=False, channel_weights=[0.114, 0.587, 0.2989]),
        dict(prob=0.66, keep_channels=True),
        dict(prob=1.0, channel_weights=[0.5, 0.25, 0.25]),
    ]
    for i in both:
        for cfg in grays:
            mm_cfg = dict(cfg)
            if "channel_weights" in mm_cfg:
                mm_cfg["channel_weights"] = tuple(mm_cfg["channel_weights"])
            out = run(dict(type="RandomGrayscale", **mm_cfg), inputs[i], [("random", 0.0)])
            add("grayscale", i, out, config=dict(type="RandomGrayscale", **cfg))
    # Skipped: random.random() = 0.3 >= 0.2.
    out = run(dict(type="RandomGrayscale", prob=0.2, keep_channels=True), inputs[0], [("random", 0.3)])
    add("grayscale_skipped", 0, out, config=dict(type="RandomGrayscale", prob=0.2, keep_channels=True), draw=0.3)

    # RandomSolarize (mmselfsup → mmcv.solarize).
    for i in both:
        for thr in (128, 77, 200):
            out = run(dict(type="RandomSolarize", threshold=thr, prob=1.0), inputs[i], [("np.rand", 0.0)])
            add("solarize", i, out, threshold=thr)

    # RandomGaussianBlur (mmselfsup → PIL ImageFilter.GaussianBlur(radius=sigma)).
    for i in both:
        for sigma in (0.1, 0.37, 1.0, 1.63, 2.0, 9.5):
            draws = [("np.rand", 0.0), ("np.uniform", sigma)]
            out = run(dict(type="RandomGaussianBlur", sigma_min=0.1, sigma_max=10.0, prob=1.0), inputs[i], draws)
            add("gaussian_blur", i, out, sigma=sigma)
    # Blur of a one-channel image (after RandomGrayscale(keep_channels=False)): PIL mode 'L'.
    gray = to_rgb(mmcv.transforms.RandomGrayscale(prob=1.0)(dict(img=to_bgr(inputs[0])))["img"])
    assert gray.ndim == 2
    add("gray_input", 0, gray)
    for sigma in (0.6, 1.9):
        out = np.array(Image.fromarray(gray).filter(ImageFilter.GaussianBlur(radius=sigma)))
        add("gaussian_blur_gray", 0, out, sigma=sigma)

    # RandomCrop (mmselfsup), with fixed offsets (random.randint).
    crops = [
        (0, dict(size=[20, 30]), [4, 5]),
        (0, dict(size=29), [0, 8]),
        (0, dict(size=[29, 37]), []),  # crop size == image size: no draw
        (0, dict(size=24, padding=3), [10, 2]),
        (0, dict(size=[30, 40], padding=[2, 4], pad_val=100), [5, 1]),
        (0, dict(size=[31, 38], padding=[1, 2, 3, 4], pad_val=[10, 20, 30]), [3, 3]),
        (0, dict(size=[33, 41], pad_if_needed=True), [1, 3]),
        (0, dict(size=[33, 41], pad_if_needed=True, pad_val=77), [2, 1]),
        (0, dict(size=[33, 41], pad_if_needed=True, padding_mode="edge"), [4, 2]),
        (0, dict(size=[33, 41], pad_if_needed=True, padding_mode="reflect"), [0, 4]),
        (0, dict(size=[33, 41], pad_if_needed=True, padding_mode="symmetric"), [4, 0]),
        (1, dict(size=[30, 40], pad_if_needed=True, padding_mode="reflect"), [17, 20]),
        (1, dict(size=[30, 40], pad_if_needed=True, padding_mode="symmetric"), [3, 24]),
        (1, dict(size=[18, 9], padding=2, pad_if_needed=True, padding_mode="edge"), [2, 7]),
    ]
    for i, cfg, offsets in crops:
        mm_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        if isinstance(mm_cfg["size"], tuple):
            mm_cfg["size"] = list(mm_cfg["size"])
        draws = [("randint", k) for k in offsets]
        out = run(dict(type="RandomCrop", **mm_cfg), inputs[i], draws)
        add("random_crop", i, out, config=dict(type="RandomCrop", **cfg), offsets=offsets)

    # mmcv.imflip (RandomFlip's operation).
    for d in ("horizontal", "vertical", "diagonal"):
        add("flip", 1, to_rgb(mmcv.imflip(to_bgr(inputs[1]), direction=d)), direction=d)

    # Whole view pipelines through MMSelfSup's registry, every draw fixed: checks the order in
    # which the transforms draw as well as the composition.
    simclr_like = [
        dict(type="RandomResizedCrop", size=24, backend="pillow"),
        dict(type="RandomFlip", prob=0.5),
        dict(
            type="RandomApply",
            transforms=[dict(type="ColorJitter", brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)],
            prob=0.8,
        ),
        dict(type="RandomGrayscale", prob=0.2, keep_channels=True, channel_weights=[0.114, 0.587, 0.2989]),
        dict(type="RandomGaussianBlur", sigma_min=0.1, sigma_max=2.0, prob=0.5),
        dict(type="RandomSolarize", prob=0.2),
    ]
    pipelines = [
        # RRC accepted on the first try; flip; jitter applied; no grayscale; blur; solarize.
        [
            ("uniform", 0.5), ("uniform", 0.1), ("randint", 3), ("randint", 6),
            ("np.choice", 0.2),
            ("np.rand", 0.3), ("np.permutation", [1, 0, 1]),
            ("np.uniform", 1.4), ("np.uniform", 0.5), ("np.uniform", 1.1), ("np.uniform", 0.12),
            ("random", 0.5),
            ("np.rand", 0.25), ("np.uniform", 1.3),
            ("np.rand", 0.1),
        ],
        # RRC rejected once; no flip; jitter skipped; grayscale; no blur; no solarize.
        [
            ("uniform", 1.0), ("uniform", -0.28), ("uniform", 0.3), ("uniform", -0.2), ("randint", 2), ("randint", 0),
            ("np.choice", 0.7),
            ("np.rand", 0.85),
            ("random", 0.1),
            ("np.rand", 0.9),
            ("np.rand", 0.6),
        ],
    ]
    for i in both:
        for draws in pipelines:
            mm = []
            for t in simclr_like:
                t = dict(t)
                if "channel_weights" in t:
                    t["channel_weights"] = tuple(t["channel_weights"])
                mm.append(t)
            timg = to_bgr(inputs[i])
            res = dict(img=timg)
            built = [TRANSFORMS.build(t) for t in mm]
            with fixed_draws(draws):
                for t in built:
                    res = t(res)
            add("pipeline", i, to_rgb(res["img"]), config=simclr_like, draws=rust_draws(draws))

    # Many blur radii on a small strip: covers `_gaussian_blur_radius` and the box edges.
    strip = inputs[0][10:13, 4:33]
    add("strip_input", 0, strip)
    for sigma in np.round(np.linspace(0.05, 6.0, 36), 4):
        out = np.array(Image.fromarray(strip).filter(ImageFilter.GaussianBlur(radius=float(sigma))))
        add("gaussian_blur_strip", 0, out, sigma=float(sigma))

    golden = dict(
        generator="tools/gen_transform_fixtures.py",
        versions=dict(
            mmcv=mmcv.__version__,
            pillow=PIL.__version__,
            numpy=np.__version__,
            opencv=cv2.__version__,
        ),
        inputs=[encode(im) for im in inputs],
        cases=cases,
        exhaustive=exhaustive_checksums(),
    )
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases, {os.path.getsize(out_path)} bytes → {os.path.relpath(out_path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
