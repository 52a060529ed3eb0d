"""torchvision + PIL counterpart of `crates/selfsup-data/examples/bench_pipeline.rs`.

Decodes the JPEGs of a folder with PIL and runs MMSelfSup's SimCLR (2 views) or MAE
augmentation written with torchvision's PIL transforms, through a torch `DataLoader`
(batch 32, `default_collate` of uint8 CHW tensors), and reports images per second per core.

    .venv-reference/bin/python tools/bench_torchvision_pipeline.py /tmp/selfsup_bench_jpegs \
        [--pipeline simclr|mae|both] [--threads 1] [--epochs 3]

With `--threads 1` everything runs in the main process on one core (`num_workers=0`,
`torch.set_num_threads(1)`); with more, `num_workers = threads`.

The transforms follow MMSelfSup 1.0.0's configs: SimCLR = RandomResizedCrop(224) →
HorizontalFlip(0.5) → RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], 0.8) →
RandomGrayscale(0.2) → PIL GaussianBlur(σ ~ U(0.1, 2)) with p 0.5, twice; MAE =
RandomResizedCrop(224, scale=(0.2, 1), bicubic) → HorizontalFlip(0.5). `finetune` is the
reference itself: mmcls 1.0.0rc6's transforms (mmcv's cv2 decoding, RandomResizedCrop,
RandomFlip, RandAugment, RandomErasing) with the ViT-B fine-tuning recipe's settings.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class PilBlur:
    """MMSelfSup's RandomGaussianBlur: PIL GaussianBlur(radius=σ), σ ~ U(lo, hi), prob p."""

    def __init__(self, lo: float, hi: float, p: float) -> None:
        self.lo, self.hi, self.p = lo, hi, p

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.lo, self.hi)))


def simclr() -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(224),
            T.RandomHorizontalFlip(0.5),
            T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            T.RandomGrayscale(0.2),
            PilBlur(0.1, 2.0, 0.5),
            T.PILToTensor(),
        ]
    )


def mae() -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(224, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(0.5),
            T.PILToTensor(),
        ]
    )


class MmclsFinetune:
    """mmcls's own train pipeline of vit-base-p16_ft-8xb128-coslr-100e_in1k (BGR arrays)."""

    def __init__(self) -> None:
        from mmcv.transforms import Compose
        from mmcls.registry import TRANSFORMS
        from mmcls.utils import register_all_modules

        register_all_modules()
        self.pipe = Compose([TRANSFORMS.build(c) for c in [
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
                 magnitude_level=9, magnitude_std=0.5,
                 hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
            dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
                 max_area_ratio=1 / 3, fill_color=[103.53, 116.28, 123.675],
                 fill_std=[57.375, 57.12, 58.395]),
        ]])

    def __call__(self, path: str):
        return torch.from_numpy(self.pipe(dict(img_path=path))['img'].transpose(2, 0, 1).copy())


class Folder(Dataset):
    def __init__(self, root: str, views: list) -> None:
        self.files = sorted(os.path.join(root, f) for f in os.listdir(root) if f.lower().endswith((".jpg", ".jpeg", ".png")))
        self.views = views

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        if isinstance(self.views, MmclsFinetune):
            return [self.views(self.files[i])]
        with open(self.files[i], "rb") as f:
            img = Image.open(f).convert("RGB")
        return [v(img) for v in self.views]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--pipeline", default="both", choices=["simclr", "mae", "finetune", "both"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = ["simclr", "mae"] if args.pipeline == "both" else [args.pipeline]
    for name in names:
        views = {"simclr": lambda: [simclr(), simclr()], "mae": lambda: [mae()], "finetune": MmclsFinetune}[name]()
        ds = Folder(args.folder, views)
        workers = 0 if args.threads <= 1 else args.threads
        loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
        for _ in loader:  # warm-up epoch
            pass
        start = time.perf_counter()
        n = 0
        for _ in range(args.epochs):
            for batch in loader:
                n += batch[0].shape[0]
        secs = time.perf_counter() - start
        per_s = n / secs
        print(f"{name}: {n} images in {secs:.2f} s = {per_s:.1f} img/s with {args.threads} thread(s) = {per_s / args.threads:.1f} img/s per core")


if __name__ == "__main__":
    main()
