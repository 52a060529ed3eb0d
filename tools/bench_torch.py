"""PyTorch counterpart of `selfsup bench CONFIG --batch-size N --steps N`.

Times full training steps (forward to the loss, backward, optimiser step and the
algorithm's after-step update) of three MMSelfSup workloads, built from plain
torch and torchvision (no timm, no mmselfsup), on synthetic inputs:

  mae     configs/mae/mae_vit-base-p16_8xb512-coslr-400e_in1k.toml
          MAE ViT-B/16, mask ratio 0.75, decoder 512 wide x 8 layers x 16 heads,
          norm-pix MSE; AdamW(lr 2.4e-3, betas (0.9, 0.95), wd 0.05) with
          decay_mult 0 for ln / bias / pos_embed / mask_token / cls_token
  simclr  configs/simclr/simclr_resnet50_8xb32-coslr-200e_in1k.toml
          SimCLR ResNet-50 (torchvision, zero_init_residual), 2 views through one
          backbone call, NonLinearNeck 2048-2048-128 (with its BatchNorms),
          NT-Xent at temperature 0.1; MMSelfSup's LARS(lr 0.3, momentum 0.9,
          wd 1e-6) with bn / bias / downsample.1 excluded from LARS and decay
  mocov3  configs/mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.toml
          MoCo v3 ViT-S/16 (frozen patch projection, fixed sin-cos positions),
          3-layer projector 384-4096-4096-256, 2-layer predictor 256-4096-256,
          cosine-EMA momentum encoder (base 0.99), InfoNCE at temperature 0.2
          (loss weight 0.4), both view orders; AdamW(lr 2.4e-3, wd 0.1)

One step is what `crates/selfsup-train/src/bench.rs` times: the inputs are made
and normalised by the data preprocessor's mean and std once, before timing; each
step is split into forward (the loss), backward, and optimiser (the update, the
zeroing of the gradients and, for MoCo v3, the momentum-encoder update), with
the device waited for after each phase. `--no-split` waits only at the ends of
the timed loop (pure throughput; the phase times are then null).
`batch_size` is samples per step (SimCLR and MoCo v3 run two views of each), and
images_per_sec = batch_size / step time, as in `selfsup bench`.

Usage:
  python tools/bench_torch.py [mae] [simclr] [mocov3] [--device cpu|cuda]
      [--batch 8] [--steps 5] [--warmup 2] [--rounds 1] [--threads N]
      [--precision fp32 [bf16]] [--attention manual|sdpa] [--channels-last]
      [--tf32] [--fused-adamw] [--no-split]

Prints one JSON line per (workload, precision, round), with the field names of
`selfsup bench --json` (algorithm, batch_size, steps, ms_per_step, forward_ms,
backward_ms, optimizer_ms, images_per_sec, backend) plus the run's settings.
The ViT blocks are mmcls 1.0.0rc6's: pre-norm (LayerNorm eps 1e-6), one fused
qkv Linear, softmax(q k^T / sqrt(d)) v written out (`--attention sdpa` uses
F.scaled_dot_product_attention instead), exact GELU.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
USE_SDPA = False


# ----------------------------------------------------------------------------
# ViT parts (mmcls naming, so MMEngine's paramwise custom_keys match verbatim)


def sincos_2d(grid: int, dim: int, cls_token: bool) -> torch.Tensor:
    """mmselfsup's build_2d_sincos_position_embedding, [1, (1+) grid^2, dim]."""
    gw, gh = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij")
    omega = 1.0 / 10000.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    ow, oh = gw.flatten()[:, None] * omega, gh.flatten()[:, None] * omega
    pe = torch.cat([ow.sin(), ow.cos(), oh.sin(), oh.cos()], 1)[None]
    return torch.cat([torch.zeros(1, 1, dim), pe], 1) if cls_token else pe


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if USE_SDPA:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            x = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class FFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Block(nn.Module):
    """mmcls TransformerEncoderLayer: x + attn(ln1(x)), then x + ffn(ln2(x))."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.ln2, self.ffn = nn.LayerNorm(dim, eps=1e-6), FFN(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class ViT(nn.Module):
    """mmcls VisionTransformer: patch conv, cls token, fixed sin-cos positions, final ln1."""

    def __init__(self, dim: int, depth: int, heads: int, hidden: int, img: int = 224, patch: int = 16) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.projection = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(sincos_2d(img // patch, dim, True), requires_grad=False)
        self.layers = nn.ModuleList(Block(dim, heads, hidden) for _ in range(depth))
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed.projection(x).flatten(2).transpose(1, 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.ln1(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cls token after the final norm (MoCoV3ViT + NonLinearNeck(vit_backbone=True))."""
        x = self.patches(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.encode(x)[:, 0]


def xavier_linears(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------
# MAE


class MAEDecoder(nn.Module):
    """mmselfsup MAEPretrainDecoder (keys neck.decoder_embed, mask_token, decoder_pos_embed, decoder_blocks, ln1, decoder_pred)."""

    def __init__(self, grid: int = 14, patch: int = 16, dim: int = 768, ddim: int = 512, depth: int = 8, heads: int = 16) -> None:
        super().__init__()
        self.decoder_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, ddim) * 0.02)
        self.decoder_pos_embed = nn.Parameter(sincos_2d(grid, ddim, True), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(Block(ddim, heads, 4 * ddim) for _ in range(depth))
        self.ln1 = nn.LayerNorm(ddim, eps=1e-6)
        self.decoder_pred = nn.Linear(ddim, patch * patch * 3)

    def forward(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(x)
        b, n, d = x.shape
        rest = torch.cat([x[:, 1:], self.mask_token.to(x.dtype).expand(b, ids_restore.shape[1] + 1 - n, d)], 1)
        rest = torch.gather(rest, 1, ids_restore[..., None].expand(-1, -1, d))
        x = torch.cat([x[:, :1], rest], 1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.ln1(x))[:, 1:]


class MAE(nn.Module):
    algorithm, views = "MAE", 1

    def __init__(self, mask_ratio: float = 0.75, patch: int = 16) -> None:
        super().__init__()
        self.mask_ratio, self.patch = mask_ratio, patch
        self.backbone = ViT(768, 12, 12, 3072)
        self.neck = MAEDecoder()
        xavier_linears(self)
        w = self.backbone.patch_embed.projection.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    def prepare(self, batch: int, device: torch.device) -> None:
        pass

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        img = views[0]
        bb = self.backbone
        x = bb.patches(img) + bb.pos_embed[:, 1:]
        b, length, d = x.shape
        keep = int(length * (1 - self.mask_ratio))
        # MAEViT.random_masking: argsort of uniform noise, no host round trip.
        ids_shuffle = torch.rand(b, length, device=x.device).argsort(1)
        ids_restore = ids_shuffle.argsort(1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(b, length, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        cls = (bb.cls_token + bb.pos_embed[:, :1]).expand(b, -1, -1)
        latent = bb.encode(torch.cat([cls, x], 1))
        pred = self.neck(latent, ids_restore)
        # MAEPretrainHead, norm_pix: per-patch standardised target, mean over masked patches.
        p, h = self.patch, img.shape[2] // self.patch
        target = img.reshape(b, 3, h, p, h, p).permute(0, 2, 4, 3, 5, 1).reshape(b, h * h, p * p * 3)
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()

    def after_step(self, it: int, max_iters: int) -> None:
        pass


# ----------------------------------------------------------------------------
# NonLinearNeck, SimCLR, MoCo v3


class NonLinearNeck(nn.Module):
    """mmselfsup NonLinearNeck (with_bias=False, with_last_bn=True, with_last_bias=False): fc0 bn0 [relu fc_i bn_i]*."""

    def __init__(self, cin: int, hid: int, cout: int, num_layers: int, last_bn_affine: bool = True) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.fc0, self.bn0 = nn.Linear(cin, hid, bias=False), nn.BatchNorm1d(hid)
        for i in range(1, num_layers):
            last = i == num_layers - 1
            self.add_module(f"fc{i}", nn.Linear(hid, cout if last else hid, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm1d(cout if last else hid, affine=not last or last_bn_affine))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.fc0(x))
        for i in range(1, self.num_layers):
            x = getattr(self, f"bn{i}")(getattr(self, f"fc{i}")(self.relu(x)))
        return x


class SimCLR(nn.Module):
    algorithm, views = "SimCLR", 2

    def __init__(self, channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.backbone = torchvision.models.resnet50(zero_init_residual=True)
        self.backbone.fc = nn.Identity()  # ResNet out_indices=(4,) + the neck's global average pool
        self.neck = NonLinearNeck(2048, 2048, 128, 2)

    def prepare(self, batch: int, device: torch.device) -> None:
        # Views interleaved (rows 2i, 2i+1 are sample i). MMSelfSup masked_selects the
        # [2n, 2n-2] negatives (a host sync on CUDA); pushing the self and partner
        # columns to -1e9 gives the same softmax (exp(-1e10) == 0 in float32).
        n2 = 2 * batch
        idx = torch.arange(n2, device=device)
        self.partner = F.one_hot(idx ^ 1, n2).float()
        self.masked = (self.partner + torch.eye(n2, device=device)) * -1.0e9
        self.labels = torch.zeros(n2, dtype=torch.long, device=device)

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        v1, v2 = views
        x = torch.stack([v1, v2], 1).flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        z = self.neck(self.backbone(x)).float()
        z = z / (z.norm(dim=1, keepdim=True) + 1.0e-10)
        s = z @ z.t()
        pos = (s * self.partner).sum(1, keepdim=True)
        logits = torch.cat([pos, s.float() + self.masked], 1) / 0.1  # ContrastiveHead, temperature 0.1
        return F.cross_entropy(logits, self.labels)

    def after_step(self, it: int, max_iters: int) -> None:
        pass


class MoCoV3(nn.Module):
    algorithm, views = "MoCoV3", 2

    def __init__(self, base_momentum: float = 0.99, temperature: float = 0.2) -> None:
        super().__init__()
        self.base_momentum, self.temperature = base_momentum, temperature
        self.backbone = ViT(384, 12, 12, 1536)
        xavier_linears(self.backbone)
        for p in self.backbone.patch_embed.projection.parameters():  # stop_grad_conv1
            p.requires_grad = False
        self.neck = NonLinearNeck(384, 4096, 256, 3, last_bn_affine=False)
        self.head = nn.Module()
        self.head.predictor = NonLinearNeck(256, 4096, 256, 2, last_bn_affine=False)
        self.momentum_encoder = nn.Sequential(copy.deepcopy(self.backbone), copy.deepcopy(self.neck))
        for p in self.momentum_encoder.parameters():
            p.requires_grad = False

    def prepare(self, batch: int, device: torch.device) -> None:
        self.labels = torch.arange(batch, device=device)
        online = nn.Sequential(self.backbone, self.neck)
        self._ema = list(self.momentum_encoder.parameters()), list(online.parameters())
        self._buffers_pair = list(self.momentum_encoder.buffers()), list(online.buffers())

    def contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """MoCoV3Head: predictor, l2-normalise, logits / T, cross-entropy x loss_weight (2T = 0.4)."""
        p = F.normalize(self.head.predictor(q).float(), dim=1)
        k = F.normalize(k.float(), dim=1)
        return 2 * self.temperature * F.cross_entropy(p @ k.t() / self.temperature, self.labels)

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        v1, v2 = views
        q1, q2 = self.neck(self.backbone(v1)), self.neck(self.backbone(v2))
        with torch.no_grad():
            # momentum_encoder.update_parameters copies the buffers (BN statistics) here;
            # the weights' EMA is done after the optimiser step (as selfsup's after_step).
            torch._foreach_copy_(*self._buffers_pair)
            k1, k2 = self.momentum_encoder(v1), self.momentum_encoder(v2)
        return self.contrast(q1, k2) + self.contrast(q2, k1)

    @torch.no_grad()
    def after_step(self, it: int, max_iters: int) -> None:
        # mmselfsup CosineEMA: m = 1 - (1 - base) (cos(pi t / T) + 1) / 2; ema = m ema + (1 - m) online.
        m = 1.0 - (1.0 - self.base_momentum) * (math.cos(math.pi * it / max(max_iters, 1)) + 1.0) / 2.0
        torch._foreach_mul_(self._ema[0], m)  # mul_ then add_, as CosineEMA.avg_func (bit-equal to it)
        torch._foreach_add_(self._ema[0], self._ema[1], alpha=1.0 - m)


# ----------------------------------------------------------------------------
# Optimisers and parameter groups (MMEngine DefaultOptimWrapperConstructor custom_keys)


class LARS(torch.optim.Optimizer):
    """mmselfsup.engine.optimizers.LARS, without its `.item()` host syncs (torch.where instead)."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, dampening: float = 0.0, eta: float = 0.001, nesterov: bool = False, eps: float = 1e-8) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, dampening=dampening, eta=eta, nesterov=nesterov, eps=eps)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            wd, mom, lr = g["weight_decay"], g["momentum"], g["lr"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad.add(p, alpha=wd)
                if g.get("lars_exclude", False):
                    d_p.mul_(lr)
                else:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                    trust = g["eta"] * w_norm / (g_norm + wd * w_norm + g["eps"])
                    d_p.mul_(torch.where((w_norm != 0) & (g_norm != 0), trust, 1.0) * lr)
                if mom != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = d_p.clone()
                    else:
                        buf = state["momentum_buffer"].mul_(mom).add_(d_p, alpha=1 - g["dampening"])
                    d_p = d_p.add(buf, alpha=mom) if g["nesterov"] else buf
                p.sub_(d_p)


def param_groups(model: nn.Module, custom_keys: dict[str, dict], weight_decay: float) -> list[dict]:
    """One group per trainable parameter; the first custom key found in its name wins (longest first, as MMEngine)."""
    keys = sorted(custom_keys, key=lambda k: (-len(k), k))
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = {"params": [p]}
        for k in keys:
            if k in name:
                opts = dict(custom_keys[k])
                group["weight_decay"] = weight_decay * opts.pop("decay_mult", 1.0)
                group.update(opts)
                break
        groups.append(group)
    return groups


def build(workload: str, args) -> tuple[nn.Module, torch.optim.Optimizer]:
    adamw = dict(fused=True) if args.fused_adamw else {}
    if workload == "mae":
        m = MAE()
        decay0 = {"decay_mult": 0.0}
        keys = {k: decay0 for k in ("ln", "bias", "pos_embed", "mask_token", "cls_token")}
        opt = lambda: torch.optim.AdamW(param_groups(m, keys, 0.05), lr=2.4e-3, betas=(0.9, 0.95), weight_decay=0.05, **adamw)
    elif workload == "simclr":
        m = SimCLR(args.channels_last)
        excl = {"decay_mult": 0.0, "lars_exclude": True}
        keys = {"bn": excl, "bias": excl, "downsample.1": excl}
        opt = lambda: LARS(param_groups(m, keys, 1e-6), lr=0.3, momentum=0.9, weight_decay=1e-6)
    elif workload == "mocov3":
        m = MoCoV3()
        opt = lambda: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=2.4e-3, weight_decay=0.1, **adamw)
    else:
        raise SystemExit(f"unknown workload {workload!r} (mae, simclr, mocov3)")
    m = m.to(args.device)
    if workload == "simclr" and args.channels_last:
        m = m.to(memory_format=torch.channels_last)
    m.train()
    m.prepare(args.batch, torch.device(args.device))
    return m, opt()


# ----------------------------------------------------------------------------
# Timing


def run(workload: str, precision: str, args, common: dict) -> None:
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model, opt = build(workload, args)
    gen = torch.Generator(device="cpu").manual_seed(0)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)
    # Synthetic pixels in [0, 255), normalised once, untimed (selfsup bench does the same).
    views = [((torch.rand(args.batch, 3, 224, 224, generator=gen) * 255.0).to(dev) - mean) / std for _ in range(model.views)]
    if args.channels_last and workload == "simclr":
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    split = not args.no_split
    phase_sync = sync if split else (lambda: None)
    use_amp = precision == "bf16"
    max_iters = args.warmup + args.steps * args.rounds
    it = 0

    def step() -> tuple[torch.Tensor, float, float, float]:
        nonlocal it
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = model(views)
        phase_sync()
        t1 = time.perf_counter()
        loss.backward()
        phase_sync()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        model.after_step(it, max_iters)
        phase_sync()
        t3 = time.perf_counter()
        it += 1
        return loss, t1 - t0, t2 - t1, t3 - t2

    for _ in range(args.warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for r in range(args.rounds):
        sync()
        phases = [0.0, 0.0, 0.0]
        start = time.perf_counter()
        for _ in range(args.steps):
            loss, *dt = step()
            for i, d in enumerate(dt):
                phases[i] += d
        sync()
        total = time.perf_counter() - start
        per = lambda s: round(1000.0 * s / max(args.steps, 1), 3)
        ms = 1000.0 * total / max(args.steps, 1)
        out = {
            "workload": workload,
            "algorithm": model.algorithm,
            "backend": "torch",
            "precision": precision,
            "round": r,
            "batch_size": args.batch,
            "views": model.views,
            "steps": args.steps,
            "warmup": args.warmup,
            "ms_per_step": round(ms, 3),
            "forward_ms": per(phases[0]) if split else None,
            "backward_ms": per(phases[1]) if split else None,
            "optimizer_ms": per(phases[2]) if split else None,
            "images_per_sec": round(args.batch * 1000.0 / max(ms, 1e-9), 3),
            "loss": float(loss.detach()),  # after the timed loop: one read, outside the steps
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            # The process's peak resident memory (Linux reports kB), as
            # `selfsup bench` reports its own; one workload per process
            # makes it that workload's.
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            **common,
        }
        print(json.dumps(out), flush=True)
    del model, opt, views
    if cuda:
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", default=["mae", "simclr", "mocov3"], help="mae, simclr, mocov3 (default: all three)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8, help="samples per step (each SimCLR/MoCo v3 sample is two views); at least 2 (BatchNorm)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps, once before the first round")
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds (one JSON line each) on the same model")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"], help="bf16 = torch.autocast(bfloat16) over the forward pass")
    ap.add_argument("--attention", choices=["manual", "sdpa"], default="manual", help="mmcls's written-out softmax attention, or F.scaled_dot_product_attention")
    ap.add_argument("--channels-last", action="store_true", help="SimCLR's ResNet and inputs in channels_last")
    ap.add_argument("--tf32", action="store_true", help="cuda: allow TF32 in fp32 matmuls and convolutions (off: true fp32)")
    ap.add_argument("--fused-adamw", action="store_true", help="torch.optim.AdamW(fused=True) instead of torch's default implementation")
    ap.add_argument("--no-split", action="store_true", help="no device waits between phases; forward/backward/optimizer_ms are null")
    args = ap.parse_args()
    if args.batch < 2:
        ap.error("--batch must be at least 2 (the necks' BatchNorm1d needs two samples)")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    if args.device == "cpu" and "bf16" in args.precision:
        print("note: bf16 autocast on CPU is measured but rarely faster than fp32", file=sys.stderr)

    global USE_SDPA
    USE_SDPA = args.attention == "sdpa"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    common = {
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "isa": torch.backends.cpu.get_cpu_capability() if args.device == "cpu" else None,
        "attention": args.attention,
        "channels_last": args.channels_last,
        "tf32": args.tf32 if args.device == "cuda" else None,
        "fused_adamw": args.fused_adamw,
        "split": not args.no_split,
    }
    for workload in args.workloads:
        for precision in args.precision:
            run(workload, precision, args, common)


if __name__ == "__main__":
    main()
