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

The `torchvision` section (see `torchvision_section`) covers PixMIM's PIL pipeline:
`mmcls.ToPIL`, `mmcls.torchvision/Resize`, `mmcls.torchvision/RandomCrop`,
`mmcls.torchvision/RandomHorizontalFlip` and `mmcls.ToNumpy`.
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
import torch
import torchvision
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
    - `("randint", k)`: `random.randint(lo, hi)` returns `k` (RandomResizedCrop, RandomCrop);
    - `("torch.randint", k)`: `torch.randint(lo, hi, size=(1,))` returns `[k]` (torchvision's
      `RandomCrop.get_params`);
    - `("torch.rand", u)`: `torch.rand(1)` returns `[u]` in float32 (torchvision's
      `RandomHorizontalFlip`).
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
        torch_randint=torch.randint,
        torch_rand=torch.rand,
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

    def torch_randint(low, high, size):
        k = pop("torch.randint")
        assert tuple(size) == (1,) and low <= k < high, (low, k, high, size)
        return torch.tensor([k])

    def torch_rand(*size):
        assert size == (1,), size
        u = pop("torch.rand")
        assert 0.0 <= u < 1.0 and float(np.float32(u)) == u, u
        return torch.tensor([u], dtype=torch.float32)

    np.random.rand = np_rand
    np.random.uniform = np_uniform
    np.random.permutation = np_permutation
    np.random.choice = np_choice
    random.random = py_random
    random.uniform = py_uniform
    random.randint = py_randint
    torch.randint = torch_randint
    torch.rand = torch_rand
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
        torch.randint = saved["torch_randint"]
        torch.rand = saved["torch_rand"]


def rust_draws(draws: list[tuple[str, object]]) -> list[dict]:
    """The same draws in the order and form `RandomSource` requests them: `{"u": x}` for a
    uniform/probability draw, `{"i": k}` for an integer draw. A Python `randint(lo, hi)`
    (inclusive) is the Rust `randint(lo, hi + 1)`; a permutation is three integer draws."""
    out = []
    for kind, v in draws:
        if kind == "np.permutation":
            out.extend({"i": int(j)} for j in v)
        elif kind in ("randint", "torch.randint"):
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
# PixMIM's PIL pipeline: ToPIL, torchvision/Resize, torchvision/RandomCrop,
# torchvision/RandomHorizontalFlip, ToNumpy
# --------------------------------------------------------------------------------------------

# Outputs with more pixels than this are stored as `checksum` (see `checksum`) instead of data.
FULL_DATA_MAX_PIXELS = 32 * 32


def encode_or_checksum(img_rgb: np.ndarray) -> dict:
    if img_rgb.shape[0] * img_rgb.shape[1] <= FULL_DATA_MAX_PIXELS:
        return encode(img_rgb)
    c = 1 if img_rgb.ndim == 2 else img_rgb.shape[2]
    return dict(w=int(img_rgb.shape[1]), h=int(img_rgb.shape[0]), c=int(c), checksum=checksum(img_rgb))


def make_torchvision_inputs() -> list[np.ndarray]:
    """Two RGB images of odd sizes: 37 wide x 53 high and 300 wide x 200 high, smooth
    gradients plus seeded noise, with a few saturated blocks near the borders (what the
    reflect padding mirrors)."""
    rs = np.random.RandomState(20240715)
    out = []
    for w, h in ((37, 53), (300, 200)):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        r = 255.0 * x / (w - 1)
        g = 255.0 * (1.0 - y / (h - 1))
        b = 128.0 + 100.0 * np.sin(x / 3.0 + y / 5.0)
        a = np.stack([r, g, b], axis=-1) + rs.randint(-40, 41, size=(h, w, 3))
        a[0:3, 0:5] = [255, 0, 0]
        a[h - 4 : h, w - 3 : w] = [0, 0, 255]
        a[h // 2 : h // 2 + 2, 0:2] = [0, 255, 0]
        out.append(np.clip(a, 0, 255).astype(np.uint8))
    return out


class Mmcls1265ToPIL:
    """`mmcls.ToPIL` as the PixMIM config uses it: `NumpyToPIL` of mmcls dev-1.x PR #1265
    (open-mmlab/mmpretrain commit c431cbc0, registered as `('NumpyToPIL', 'ToPIL')`).
    mmcls 1.0.0rc6's `ToPIL` takes no argument (`ToPIL(to_rgb=True)` is a TypeError there);
    mmpretrain 1.2.0's `NumpyToPIL(to_rgb)` is the same code (checked below)."""

    def __init__(self, to_rgb: bool = False) -> None:
        self.to_rgb = to_rgb

    def __call__(self, results: dict) -> dict:
        img = results["img"]
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if self.to_rgb else img
        results["img"] = Image.fromarray(img)
        return results


class Mmcls1265ToNumpy:
    """`mmcls.ToNumpy` as the PixMIM config uses it: `PILToNumpy(to_rgb, dtype)` of the same
    commit. mmcls 1.0.0rc6's `ToNumpy` requires `keys` and has no `to_rgb`; mmpretrain 1.2.0
    renamed the argument `to_bgr` (`cv2.COLOR_RGB2BGR`, the same channel swap; checked
    below)."""

    def __init__(self, to_rgb: bool = False, dtype=None) -> None:
        self.to_rgb = to_rgb
        self.dtype = dtype

    def __call__(self, results: dict) -> dict:
        img = np.array(results["img"], dtype=self.dtype)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if self.to_rgb else img
        results["img"] = img
        return results


def build_pil_transform(cfg: dict):
    """The reference of one of our PIL-pipeline configs. `torchvision/<Name>` is built by
    mmpretrain 1.2.0's registry, whose `TorchVisonTransformWrapper` is what mmcls dev-1.x
    PR #1265 registered (mmcls 1.0.0rc6 registers no `torchvision/` transform): the
    torchvision class built with the config's arguments (an `interpolation` string mapped by
    `_interpolation_modes_from_str`), applied to `results['img']`."""
    from mmselfsup.registry import TRANSFORMS as SELFSUP_TRANSFORMS

    cfg = dict(cfg)
    name = cfg.pop("type").split(".")[-1]
    if name == "ToPIL":
        return Mmcls1265ToPIL(**cfg)
    if name == "ToNumpy":
        return Mmcls1265ToNumpy(**cfg)
    assert name.startswith("torchvision/"), name
    t = SELFSUP_TRANSFORMS.build(dict(type=f"mmpretrain.{name}", **cfg))
    assert type(t).__name__ == "TorchVisonTransformWrapper", type(t)
    return t


def run_pil_pipeline(cfgs: list[dict], img_rgb: np.ndarray, draws) -> np.ndarray:
    """Runs the reference of `cfgs` on the BGR version of `img_rgb` (as mmcv's
    `LoadImageFromFile` gives it) with the fixed `draws` (None: torch's own RNG), and returns
    the final array reversed to RGB, as the other cases store outputs."""
    built = [build_pil_transform(c) for c in cfgs]
    res = dict(img=to_bgr(img_rgb))
    with fixed_draws(draws) if draws is not None else contextlib.nullcontext():
        for t in built:
            res = t(res)
    assert isinstance(res["img"], np.ndarray) and res["img"].dtype == np.uint8
    return to_rgb(res["img"])


def check_against_mmpretrain(img_rgb: np.ndarray) -> None:
    """The PR #1265 conversions equal mmpretrain 1.2.0's `NumpyToPIL(to_rgb)` and
    `PILToNumpy(to_bgr)`."""
    from mmselfsup.registry import TRANSFORMS as SELFSUP_TRANSFORMS

    for flag in (False, True):
        ours = Mmcls1265ToPIL(to_rgb=flag)(dict(img=to_bgr(img_rgb)))["img"]
        theirs = SELFSUP_TRANSFORMS.build(dict(type="mmpretrain.ToPIL", to_rgb=flag))(dict(img=to_bgr(img_rgb)))["img"]
        assert ours.mode == theirs.mode and np.array_equal(np.array(ours), np.array(theirs))
        ours = Mmcls1265ToNumpy(to_rgb=flag)(dict(img=theirs))["img"]
        theirs = SELFSUP_TRANSFORMS.build(dict(type="mmpretrain.ToNumpy", to_bgr=flag))(dict(img=theirs))["img"]
        assert np.array_equal(ours, theirs)


def np_pad_table() -> list[dict]:
    """`np.pad` of `arange(n)` for small n and pads up to twice the length: the index maps
    of `reflect`, `symmetric` and `edge` (NumPy pads iteratively, which differs from OpenCV's
    borders when one side's pad exceeds the length)."""
    out = []
    for n in range(1, 6):
        for before, after in ((0, 6), (6, 0), (4, 4), (11, 2), (2, 11), (13, 13)):
            for mode in ("reflect", "symmetric", "edge"):
                idx = np.pad(np.arange(n), (before, after), mode=mode)
                out.append(dict(n=n, before=before, after=after, mode=mode, index=[int(i) for i in idx]))
    return out


def crop_size(size) -> tuple[int, int]:
    """torchvision's `_setup_size`: `(h, w)`."""
    if isinstance(size, int):
        return size, size
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def padded_size(h: int, w: int, cfg: dict) -> tuple[int, int]:
    """The `(h, w)` torchvision's `RandomCrop.forward` crops from (shapes only)."""
    p = cfg.get("padding")
    if p is not None:
        p = [p] if isinstance(p, int) else list(p)
        left, top, right, bottom = {1: p * 4, 2: p + p, 4: p}[len(p)]
        h, w = h + top + bottom, w + left + right
    th, tw = crop_size(cfg["size"])
    if cfg.get("pad_if_needed") and w < tw:
        w += 2 * (tw - w)
    if cfg.get("pad_if_needed") and h < th:
        h += 2 * (th - h)
    return h, w


def torchvision_section() -> dict:
    """Cases for `TorchvisionResize`, `TorchvisionRandomCrop`, `TorchvisionRandomHorizontalFlip`,
    `ToPil` and `ToNumpy`: each case is a pipeline (our config, with the PixMIM config's
    `mmcls.` type names) run by the reference on one of two inputs, with its torch draws fixed
    (`torch.randint` for the crop offsets i then j, `torch.rand(1)` for the flip) and recorded
    for `ReplayDraws`; `pixmim` cases instead run the whole PixMIM view pipeline on torch's
    own seeded generator, whose draws are recovered by replaying the same calls on the same
    seed and checked by rerunning with them fixed."""
    import mmpretrain.datasets.transforms  # noqa: F401  (registers mmpretrain's transforms)

    inputs = make_torchvision_inputs()
    check_against_mmpretrain(inputs[0])
    cases: list[dict] = []
    to_pil = dict(type="mmcls.ToPIL", to_rgb=True)
    to_numpy = dict(type="mmcls.ToNumpy", to_rgb=True)

    def add(kind: str, i: int, cfgs: list[dict], draws: list | None = None, **extra) -> None:
        draws = draws or []
        out = run_pil_pipeline(cfgs, inputs[i], draws)
        cases.append(dict(kind=kind, input=i, config=cfgs, draws=rust_draws(draws), **extra, out=encode_or_checksum(out)))

    def wrapped(t: dict) -> list[dict]:
        return [to_pil, t, to_numpy]

    # Conversions alone: paired `to_rgb=True` (the PixMIM config) or `False` leaves the array
    # unchanged; a mixed pair swaps the channels.
    for a, b in ((True, True), (False, False), (True, False), (False, True)):
        add("conversion", 0, [dict(type="mmcls.ToPIL", to_rgb=a), dict(type="mmcls.ToNumpy", to_rgb=b)])

    # Resize: shorter edge (int or [s]), [h, w], max_size, every interpolation name.
    resizes = [
        (0, dict(size=224)),
        (0, dict(size=20)),
        (0, dict(size=[17])),
        (0, dict(size=[30, 45])),
        (0, dict(size=30, max_size=40)),
        (0, dict(size=53)),  # 53 x int(53 * 53 / 37) = 53 x 75: upscale
        (0, dict(size=37)),  # shorter edge unchanged: no resize
        (1, dict(size=224)),
        (1, dict(size=64)),
        (1, dict(size=[50, 70])),
        (1, dict(size=101, interpolation="bicubic")),
        # Pillow 13.0.0 resamples vertically first when 2 * (W - w) < H - h (the intermediate
        # image is rounded to 8 bits, so the order shows): both smaller, and on either side
        # of the boundary (37 x 53 → 22 x 23: 30 = 30, horizontal first; 23 x 23: vertical).
        (0, dict(size=[20, 33])),
        (0, dict(size=[23, 22])),
        (0, dict(size=[23, 23])),
        (1, dict(size=[40, 290], interpolation="lanczos")),
    ]
    for interp in ("nearest", "bilinear", "bicubic", "box", "hammimg", "lanczos"):
        resizes.append((0, dict(size=24, interpolation=interp)))
        resizes.append((1, dict(size=[41, 67], interpolation=interp)))
    resizes.append((0, dict(size=[60, 29], interpolation="BICUBIC")))  # the wrapper lower-cases
    for i, cfg in resizes:
        add("resize", i, wrapped(dict(type="mmcls.torchvision/Resize", **cfg)))

    # RandomCrop: padding modes and forms, fill forms, pad_if_needed; the offsets (i, j) are
    # the given fractions of their ranges [0, H - th] and [0, W - tw] in the padded image.
    crops = [
        (0, dict(size=32, padding=4, padding_mode="reflect"), (0.2, 0.3)),
        (0, dict(size=32, padding=4, padding_mode="reflect"), (0.0, 0.0)),
        (0, dict(size=32, padding=4, padding_mode="reflect"), (1.0, 1.0)),
        (0, dict(size=[40, 30], padding=4, padding_mode="symmetric"), (0.3, 0.8)),
        (0, dict(size=[40, 30], padding=4, padding_mode="edge"), (1.0, 0.1)),
        (0, dict(size=[40, 30], padding=4), (0.05, 0.7)),
        (0, dict(size=[40, 30], padding=4, fill=77), (0.0, 0.6)),
        (0, dict(size=[40, 30], padding=4, fill=[10, 200, 30]), (1.0, 0.0)),
        (0, dict(size=[40, 30], padding=4, fill=3.7), (0.15, 0.25)),
        (0, dict(size=[40, 30], padding=4, fill=300), (0.2, 0.3)),
        (0, dict(size=[40, 30], padding=[1, 2], padding_mode="reflect"), (0.9, 1.0)),
        (0, dict(size=[40, 30], padding=[1, 2, 3, 4], padding_mode="reflect"), (0.8, 0.9)),
        (0, dict(size=[40, 30], padding=[5], padding_mode="symmetric"), (0.1, 0.4)),
        (0, dict(size=[61, 45], padding=4, padding_mode="reflect"), None),  # padded size: no draw
        (0, dict(size=[100, 60], padding=[40, 2, 3, 60], padding_mode="reflect"), (0.5, 0.85)),
        (0, dict(size=[100, 60], padding=[40, 2, 3, 60], padding_mode="symmetric"), (0.75, 0.2)),
        (0, dict(size=[60, 45], pad_if_needed=True), (0.0, 0.0)),
        (0, dict(size=[60, 45], pad_if_needed=True, padding_mode="reflect"), (0.7, 0.25)),
        (0, dict(size=[60, 45], pad_if_needed=True, padding_mode="symmetric"), (1.0, 0.9)),
        (0, dict(size=[60, 45], pad_if_needed=True, padding_mode="edge"), (0.5, 0.5)),
        (0, dict(size=[60, 45], pad_if_needed=True, fill=[1, 2, 3]), (0.1, 0.6)),
        (0, dict(size=[64, 40], padding=2, pad_if_needed=True, padding_mode="reflect"), (0.4, 0.3)),
        (1, dict(size=[150, 250], padding=4, padding_mode="reflect"), (0.98, 0.15)),
        (1, dict(size=96, padding=4, padding_mode="reflect"), (0.9, 0.99)),
    ]
    for i, cfg, frac in crops:
        h, w = padded_size(inputs[i].shape[0], inputs[i].shape[1], cfg)
        th, tw = crop_size(cfg["size"])
        offsets = [] if frac is None else [round(frac[0] * (h - th)), round(frac[1] * (w - tw))]
        assert (frac is None) == ((h, w) == (th, tw)), (cfg, h, w)
        add(
            "random_crop",
            i,
            wrapped(dict(type="mmcls.torchvision/RandomCrop", **cfg)),
            [("torch.randint", k) for k in offsets],
            offsets=offsets,
        )

    # Fill and channel order: the fill tuple is in the PIL image's channel order, RGB after
    # ToPIL(to_rgb=True) and BGR after ToPIL(to_rgb=False).
    crop = dict(type="mmcls.torchvision/RandomCrop", size=[40, 30], padding=4, fill=[10, 200, 30])
    for flag in (True, False):
        cfgs = [dict(type="mmcls.ToPIL", to_rgb=flag), crop, dict(type="mmcls.ToNumpy", to_rgb=flag)]
        add("random_crop", 0, cfgs, [("torch.randint", 0), ("torch.randint", 0)], offsets=[0, 0])

    # RandomHorizontalFlip: torch.rand(1) < p.
    flips = [(0, 0.5, 0.3), (0, 0.5, 0.7), (0, 1.0, 0.99999994), (1, 0.5, 0.2), (1, 0.0, 0.0)]
    for i, p, u in flips:
        u = float(np.float32(u))  # what torch.rand returns is a float32
        add("flip", i, wrapped(dict(type="mmcls.torchvision/RandomHorizontalFlip", p=p)), [("torch.rand", u)], u=u)

    # The PixMIM view pipeline, on torch's own generator.
    pixmim = [
        to_pil,
        dict(type="mmcls.torchvision/Resize", size=224),
        dict(type="mmcls.torchvision/RandomCrop", size=224, padding=4, padding_mode="reflect"),
        dict(type="mmcls.torchvision/RandomHorizontalFlip", p=0.5),
        to_numpy,
    ]
    for i, seed in ((0, 0), (0, 3), (1, 1), (1, 5)):
        torch.manual_seed(seed)
        out = run_pil_pipeline(pixmim, inputs[i], None)
        # The draws, replayed on the same seed: the resized and padded image is
        # (224 * long / short) x 224 plus 4 on each side.
        h, w = inputs[i].shape[:2]
        short, long = min(h, w), max(h, w)
        new_long = int(224 * long / short)
        ph, pw = (new_long + 8, 232) if w <= h else (232, new_long + 8)
        g = torch.manual_seed(seed)
        del g
        draws = [
            ("torch.randint", int(torch.randint(0, ph - 224 + 1, size=(1,)).item())),
            ("torch.randint", int(torch.randint(0, pw - 224 + 1, size=(1,)).item())),
            ("torch.rand", float(torch.rand(1).item())),
        ]
        assert np.array_equal(run_pil_pipeline(pixmim, inputs[i], draws), out), "draw order"
        cases.append(dict(kind="pixmim", input=i, config=pixmim, seed=seed, draws=rust_draws(draws), out=encode_or_checksum(out)))

    return dict(
        reference=(
            "mmcls dev-1.x PR #1265 (open-mmlab/mmpretrain c431cbc0) ToPIL/ToNumpy; torchvision/* "
            "through mmpretrain 1.2.0's TorchVisonTransformWrapper"
        ),
        versions=dict(torch=torch.__version__, torchvision=torchvision.__version__),
        inputs=[encode(im) for im in inputs],
        cases=cases,
        np_pad=np_pad_table(),
    )


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
        torchvision=torchvision_section(),
    )
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    n_tv = len(golden["torchvision"]["cases"])
    print(f"{len(cases)} + {n_tv} torchvision cases, {os.path.getsize(out_path)} bytes → {os.path.relpath(out_path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
