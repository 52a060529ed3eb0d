"""Time one SimMIM Swin-B/192 training step of the real MMSelfSup 1.0.0.

The yardstick for `selfsup bench configs/simmim/simmim_swin-base_16xb128-amp-coslr-100e_in1k-192.toml`:
MMSelfSup's own model (SimMIMSwinTransformer Swin-B, window 6, SimMIMNeck,
SimMIMHead with the L1 reconstruction loss), built from the package's config,
on random 192x192 inputs with SimMIM masks (ratio 0.6, 32-pixel mask patches),
in float32. A step is forward to the loss, backward, and the config's AdamW
step (lr 2e-4 x batch/512, betas (0.9, 0.999), wd 0.05 except the config's
custom keys norm, bias, absolute_pos_embed and relative_position_bias_table,
gradients clipped to norm 5). The config's AMP is left out: float32 on CPU.
`selfsup bench` makes its inputs the same way, before timing.

Run it in the reference environment (tools/reference/setup.sh):
  .venv-reference/bin/python tools/bench_simmim_reference.py --batch 8 --steps 3 --warmup 1
Prints one JSON line: batch_size, steps, ms_per_step, images_per_sec, the
torch version and its CPU capability (the vector ISA its kernels use).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from mmengine.config import Config
from mmselfsup.registry import MODELS
from mmselfsup.utils import register_all_modules


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--threads', type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()
    import mmselfsup
    cfg = Config.fromfile(os.path.join(
        os.path.dirname(mmselfsup.__file__), '.mim', 'configs', 'selfsup',
        'simmim', 'simmim_swin-base_16xb128-amp-coslr-100e_in1k-192.py'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    torch.manual_seed(0)
    b = args.batch
    x = torch.randn(b, 3, 192, 192)
    # SimMIMMaskGenerator(input_size=192, mask_patch_size=32,
    # model_patch_size=4, mask_ratio=0.6): a 6x6 grid, 21 of 36 masked,
    # upsampled 8x to the 48x48 tokens.
    masks = []
    for _ in range(b):
        m = torch.zeros(36)
        m[torch.randperm(36)[:21]] = 1
        masks.append(m.reshape(6, 6).repeat_interleave(8, 0).repeat_interleave(8, 1))
    mask = torch.stack(masks)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = any(k in name for k in ('norm', 'bias', 'absolute_pos_embed',
                                       'relative_position_bias_table'))
        (no_decay if skip else decay).append(p)
    opt = torch.optim.AdamW([
        dict(params=decay, weight_decay=0.05),
        dict(params=no_decay, weight_decay=0.0)
    ], lr=2e-4 * b / 512, betas=(0.9, 0.999), eps=1e-8)

    def step() -> None:
        latent = model.backbone(x, mask)
        img_latent = model.neck(latent[0])
        loss = model.head(img_latent, x, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    for _ in range(args.warmup):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = (time.perf_counter() - t) / args.steps
    print(json.dumps(dict(
        algorithm='SimMIM Swin-B/192 (MMSelfSup 1.0.0)', batch_size=b,
        steps=args.steps, ms_per_step=dt * 1e3, images_per_sec=b / dt,
        backend=f'torch {torch.__version__} CPU',
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads())))


if __name__ == '__main__':
    main()
