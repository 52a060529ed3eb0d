#!/usr/bin/env python
"""Generate golden fixtures for the tokenizer / teacher target generators
(``DALL-E``, ``CLIPGenerator``, ``VQKD``) from the REAL MMSelfSup 1.0.0.

    .venv-reference/bin/python tools/gen_fixtures_tokenizers.py --out tests/fixtures [--cases dalle_tiny ...] [--list]

Each case builds the generator with the real classes from a tiny config,
seeds its random weights, and saves them **in the layout of the published
weight file the real configs name**, so that the Rust loader is tested on
that layout:

- ``dalle_tiny``: ``DALL-E`` (``n_hid`` 8, two blocks per group, vocabulary
  32; the attrs validators' minimums 64 and 512 are disabled with
  ``attr.validators.disabled()``, the module code unchanged). Weight file
  ``dalle_encoder.pth``: the encoder's flat ``state_dict()`` (keys
  ``blocks.*``), the layout MMSelfSup 0.x loaded strictly with
  ``Encoder().load_state_dict(torch.load(path))`` and 1.x through
  ``init_cfg=dict(type='Pretrained', checkpoint=...)``. Inputs: 0-255
  pixels mapped to [0.1, 0.9] by BEiT's ``TwoNormDataPreprocessor`` formula
  ``(x + 20.4) / 204``, a (2,3,32,32) and a (1,3,24,40) batch. Outputs: the
  logits, the codes (argmax), the four groups' outputs of the second batch.
- ``clip_tiny``: ``CLIPGenerator(tokenizer_path=clip.pth.tar)`` end to end,
  the file a flat OpenAI-layout CLIP state dict (visual and text towers,
  the ``input_resolution``/``context_length``/``vocab_size`` entries of
  OpenAI's JIT archives, and OpenAI's ``convert_weights`` half precision
  for convolution/Linear/attention weights and the projections) from which
  ``build_clip_model`` infers the architecture: vision width 64 (so
  ``64 // 64 = 1`` head), 1 layer, patch 8 on 32-pixel images, embed_dim
  16, a 1-layer width-64 text tower with vocabulary 16 and context 4.
  Outputs: the features (after ``ln_post`` and ``proj``) and the last
  layer's head-averaged attention, plus the tokens after ``ln_pre`` and
  after the block. Because
  ``build_clip_model`` always gives ``width // 64`` heads, a second
  file ``visual_2heads.pth`` holds the reference ``VisionTransformer`` built
  directly with width 32, **2 heads**, 2 layers (float16 weights), with its
  outputs, to check the head split and averaging. ``clip_vit_b16_keys.json``
  is the generator's inventory for OpenAI's ViT-B/16 (the architecture
  ``build_clip_model`` infers from ``clip_vit_base_16.pth.tar``), built on
  the meta device.
- ``vqkd_tiny``: ``VQKD`` with the BEiT v2 config's ``vqkd_encoder`` dict
  (tiny arch: width 16, 2 layers, 2 heads, 32-pixel images, patch 8), a
  32 x 8 codebook (``quantize_kmeans_init=False``: a normalised randn,
  ``initted`` 1). Weight file ``vqkd_encoder.pth``: the flat
  ``state_dict()``. Input: (2,3,32,32) pixels normalised as BEiT v2's
  second view, ``(x - 127.5) / 127.5``. Outputs: the encoder output, the
  task layer's output, the codebook distances, the token ids; the
  quantizer's in-place EMA after one forward in training mode (codebook and
  ``cluster_size``) and in eval mode (``cluster_size`` only); and the
  reference ``kmeans`` (cosine, 10 iterations) on the normalised features
  with 8 clusters, with the ``torch.randperm`` draw it used.

Every constant parameter (zero biases, unit LayerNorm weights, zero
``cls_token``, q/v biases, the zero ``cluster_size``) is redrawn with a
seeded random perturbation before saving, so that a mis-mapped bias or norm
cannot pass. ``keys.json`` is the generator's ``state_dict`` inventory
(keys, shapes, dtypes) as the algorithm holds it (``target_generator.``
prefix not included).

Argmax/argmin ties: the data seed is advanced until every code's best and
second-best logit (DALL-E), distance (VQ-KD) or k-means similarity (every
iteration) differ by at least ``MARGIN`` of the scale.

Each case validates itself: a second generator built from the saved file
(another init seed) reproduces every output bit for bit; float64 copies
give the float32 error recorded in ``config.json``.
"""
import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import attr  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmselfsup.models.utils import clip as clip_mod  # noqa: E402
from mmselfsup.models.utils.vector_quantizer import kmeans  # noqa: E402
from mmselfsup.registry import MODELS  # noqa: E402

GENERATOR = 'tools/gen_fixtures_tokenizers.py'
BEITV2_CFG = 'beitv2/beitv2_vit-base-p16_8xb256-amp-coslr-300e_in1k.py'
MARGIN = 1e-3


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def perturb_constants(module, seed, skip=()):
    """Redraw every constant float tensor of the state dict (zero biases,
    unit norm weights, zero tokens): ``c + 0.1 * randn`` (positive
    ``0.5 + rand`` for counts), seeded. Returns the perturbed keys."""
    g = seeded(seed)
    done = []
    with torch.no_grad():
        for k, v in module.state_dict(keep_vars=True).items():
            if k in skip or not v.is_floating_point() or v.numel() == 0:
                continue
            if bool((v == v.flatten()[0]).all()):
                if k.endswith('cluster_size'):
                    v.copy_(0.5 + torch.rand(v.shape, generator=g) * 4)
                else:
                    v.add_(0.1 * torch.randn(v.shape, generator=g))
                done.append(k)
    return done


def keys_json(path, module):
    base.write_lines_json(path, base.keys_entries(module))


def f32_rel(a32, a64):
    return base.sig4(base.rel_err(a32, a64)[0])


def top2_margin(scores, dim):
    """Smallest gap between the best and second-best score along ``dim``,
    relative to the largest magnitude."""
    top = scores.topk(2, dim=dim).values
    gap = (top.select(dim, 0) - top.select(dim, 1)).min()
    return float(gap / scores.abs().max())


# ================================================================ DALL-E
DALLE_CFG = dict(type='DALL-E', n_hid=8, n_blk_per_group=2, vocab_size=32)


def build_dalle(seed):
    base.seed_all(seed)
    with attr.validators.disabled():
        return MODELS.build(ConfigDict(copy.deepcopy(DALLE_CFG)))


def dalle_input(shape, seed):
    """0-255 pixels through BEiT's second-view normalisation."""
    u = base.raw_images(shape, seed).float()
    mean = torch.tensor(-20.4).view(1, 1, 1, 1)
    std = torch.tensor(204.0).view(1, 1, 1, 1)
    return (u - mean) / std


def dalle_groups(enc, x):
    b = enc.blocks
    x = b.input(x)
    outs = []
    for g in (b.group_1, b.group_2, b.group_3, b.group_4):
        x = g(x)
        outs.append(x)
    return outs


def dalle_f64(enc, x):
    """The encoder in float64: its ``Conv2d`` casts to float32, so the
    convolutions are called directly."""
    e = copy.deepcopy(enc).double()
    for mod in e.modules():
        if type(mod).__name__ == 'Conv2d' and hasattr(mod, 'kw'):
            mod.forward = (lambda c: lambda y: F.conv2d(
                y, c.w, c.b, padding=(c.kw - 1) // 2))(mod)
    return e.blocks(x.double())


def run_dalle(out_dir):
    name = 'dalle_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    seeds = dict(init_seed=3101, perturb_seed=3102, x1_seed=3103, x2_seed=3104)
    enc = build_dalle(seeds['init_seed'])
    perturbed = perturb_constants(enc, seeds['perturb_seed'])
    assert all(k.endswith('.b') for k in perturbed), perturbed
    path = os.path.join(d, 'dalle_encoder.pth')
    torch.save(enc.state_dict(), path)
    keys_json(os.path.join(d, 'keys.json'), enc)

    # the published layout loads strictly into a fresh encoder
    enc2 = build_dalle(seeds['init_seed'] + 999)
    enc2.load_state_dict(torch.load(path, map_location='cpu', weights_only=True), strict=True)

    t = {}
    info = {}
    for key, shape in (('1', (2, 3, 32, 32)), ('2', (1, 3, 24, 40))):
        bump = 0
        while True:
            x = dalle_input(shape, seeds[f'x{key}_seed'] + bump)
            with torch.no_grad():
                logits = enc(x)
            if top2_margin(logits, 1) >= MARGIN:
                break
            bump += 1
        with torch.no_grad():
            assert torch.equal(enc2(x), logits)
            groups = dalle_groups(enc, x)
            l64 = dalle_f64(enc, x)
        assert torch.equal(l64.argmax(1), logits.argmax(1))
        t[f'x{key}'] = x
        t[f'logits{key}'] = logits
        t[f'codes{key}'] = logits.argmax(1).flatten(1)
        if key == '2':
            for i, g in enumerate(groups, start=1):
                t[f'x{key}.group_{i}'] = g
        info[key] = dict(shape=list(shape), data_seed_bump=bump,
                         margin=base.sig4(top2_margin(logits, 1)),
                         logits_float32_error=f32_rel(logits, l64))
    base.save_io(os.path.join(d, 'io.safetensors'), t, name)
    base.write_json(os.path.join(d, 'config.json'), dict(
        target_generator=DALLE_CFG,
        weight_file='dalle_encoder.pth: torch.save(encoder.state_dict()), flat, keys blocks.*',
        seeds=seeds,
        perturbed=f'{len(perturbed)} constant tensors (every bias `b`): '
        'b + 0.1 randn',
        inputs_note='raw_images (uint8, seeded) mapped by (x + 20.4) / 204, '
        'float32, as TwoNormDataPreprocessor second view',
        code_margin=MARGIN,
        inputs=info))
    return dict(case=name, tensors=t, dir=d)


# ================================================================ CLIP
CLIP_ARCH = dict(
    embed_dim=16, image_resolution=32, vision_layers=1, vision_width=64,
    vision_patch_size=8, context_length=4, vocab_size=16,
    transformer_width=64, transformer_heads=1, transformer_layers=1)
# what build_clip_model infers from OpenAI's ViT-B/16 (clip_vit_base_16.pth.tar)
CLIP_VIT_B16 = dict(
    embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
    vision_patch_size=16, context_length=77, vocab_size=49408,
    transformer_width=512, transformer_heads=8, transformer_layers=12)
CLIP2H = dict(input_resolution=32, patch_size=8, width=32, layers=2, heads=2,
              output_dim=16)


def openai_half(model, sd):
    """OpenAI's ``convert_weights``: convolution, Linear and attention
    weights and biases, ``text_projection`` and ``proj`` in float16, the
    rest (norms, embeddings, ``logit_scale``) float32."""
    half = {'text_projection', 'visual.proj'}
    for name, m in model.named_modules():
        pre = f'{name}.' if name else ''
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
            half.update(f'{pre}{a}' for a in ('weight', 'bias') if getattr(m, a, None) is not None)
        if isinstance(m, torch.nn.MultiheadAttention):
            half.update(f'{pre}{a}' for a in ('in_proj_weight', 'in_proj_bias'))
    return {k: (v.half() if k in half else v) for k, v in sd.items()}, sorted(half & set(sd))


def clip_f64(module):
    """A float64 copy; MMSelfSup's LayerNorm casts its input to float32,
    so the copy uses ``nn.LayerNorm.forward`` instead."""
    m = copy.deepcopy(module).double()
    for mod in m.modules():
        if isinstance(mod, clip_mod.LayerNorm):
            mod.forward = (lambda ln: lambda y: torch.nn.LayerNorm.forward(ln, y))(mod)
    return m


def run_clip(out_dir):
    name = 'clip_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    seeds = dict(init_seed=3201, perturb_seed=3202, x_seed=3203,
                 init2h_seed=3204, perturb2h_seed=3205)
    base.seed_all(seeds['init_seed'])
    clip = clip_mod.CLIP(**CLIP_ARCH)
    perturbed = perturb_constants(clip, seeds['perturb_seed'])
    sd, halves = openai_half(clip, clip.state_dict())
    for k, v in (('input_resolution', 32), ('context_length', 4), ('vocab_size', 16)):
        sd[k] = torch.tensor(v)
    path = os.path.join(d, 'clip.pth.tar')
    torch.save(sd, path)

    # the real generator, end to end from the file
    gen = MODELS.build(dict(type='CLIPGenerator', tokenizer_path=path))
    keys_json(os.path.join(d, 'keys.json'), gen)
    vis = gen.tokenizer.visual
    assert vis.transformer.resblocks[0].attn.num_heads == 1
    assert all(v.dtype == torch.float32 for v in gen.state_dict().values())
    x = torch.randn((2, 3, 32, 32), generator=seeded(seeds['x_seed']))
    rec = base.Recorder()
    rec.out(vis.ln_pre, 'ln_pre')
    # the last block returns (x, attention), x as (L, N, D)
    rec.out(vis.transformer.resblocks[-1], 'block_out', pick=lambda o: o[0].permute(1, 0, 2))
    try:
        with torch.no_grad():
            feats, attn = gen(x)
    finally:
        rec.close()
    assert feats.shape == (2, 17, 16) and attn.shape == (2, 17, 17)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 17))
    gen2 = MODELS.build(dict(type='CLIPGenerator', tokenizer_path=path))
    with torch.no_grad():
        f2, a2 = gen2(x)
        f64, a64 = clip_f64(gen)(x.double())
    assert torch.equal(f2, feats) and torch.equal(a2, attn)
    t = {'x': x, 'features': feats, 'attention': attn,
         'ln_pre': rec.one('ln_pre'), 'block_out': rec.one('block_out')}

    # two heads: the reference VisionTransformer directly (build_clip_model
    # always gives width // 64 heads)
    base.seed_all(seeds['init2h_seed'])
    vt = clip_mod.VisionTransformer(**CLIP2H)
    perturbed2h = perturb_constants(vt, seeds['perturb2h_seed'])
    sd2 = {k: v.half() for k, v in vt.state_dict().items()}
    vt.load_state_dict(sd2)  # the float32 model holds the float16 values
    torch.save(sd2, os.path.join(d, 'visual_2heads.pth'))
    with torch.no_grad():
        feats2, attn2 = vt(x)
        f64_2, a64_2 = clip_f64(vt)(x.double())
    t.update({'2heads.features': feats2, '2heads.attention': attn2})

    # the full-size inventory: ViT-B/16 as build_clip_model infers it from
    # clip_vit_base_16.pth.tar (the text tower included), on the meta device
    with torch.device('meta'):
        full = clip_mod.CLIP(**CLIP_VIT_B16)
    entries = [dict(e, key=f'tokenizer.{e["key"]}') for e in base.keys_entries(full)]
    base.write_lines_json(os.path.join(d, 'clip_vit_b16_keys.json'), entries)
    base.save_io(os.path.join(d, 'io.safetensors'), t, name)
    base.write_json(os.path.join(d, 'config.json'), dict(
        target_generator=dict(type='CLIPGenerator', tokenizer_path='clip.pth.tar'),
        arch=CLIP_ARCH,
        weight_file='clip.pth.tar: a flat OpenAI-layout CLIP state dict, '
        'input_resolution/context_length/vocab_size as 0-d int64, float16 '
        'where OpenAI\'s convert_weights puts it',
        float16_keys=len(halves),
        perturbed=f'{len(perturbed)} constant tensors (norms, biases, '
        'logit_scale): c + 0.1 randn',
        two_heads=dict(vision_transformer=CLIP2H, file='visual_2heads.pth: '
                       'VisionTransformer.state_dict(), all float16',
                       perturbed=len(perturbed2h)),
        seeds=seeds,
        inputs_note='x ~ randn (seeded torch.Generator), float32',
        float32_error=dict(
            features=f32_rel(feats, f64), attention=f32_rel(attn, a64),
            two_heads_features=f32_rel(feats2, f64_2),
            two_heads_attention=f32_rel(attn2, a64_2))))
    return dict(case=name, tensors=t, dir=d)


# ================================================================ VQ-KD
VQKD_ARCH = dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)
KMEANS_CLUSTERS = 8


def vqkd_cfg():
    """The BEiT v2 config's target_generator, tiny: its ``vqkd_encoder`` dict
    with a tiny arch and 32-pixel images, a 32 x 8 random codebook, no
    ``init_cfg`` (the file is loaded by the test)."""
    real = Config.fromfile(base.cfg_path(BEITV2_CFG)).model.target_generator.to_dict()
    assert set(real) == {'type', 'encoder_config', 'init_cfg'}, real
    enc = copy.deepcopy(real['encoder_config'])
    enc.update(arch=dict(VQKD_ARCH), img_size=32, patch_size=8)
    return dict(type='VQKD', encoder_config=enc, num_embed=32, embed_dims=8,
                quantize_kmeans_init=False)


def build_vqkd(cfg, seed):
    base.seed_all(seed)
    m = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    m.init_weights()
    m.train()  # as BEiT v2 holds it
    return m


def vqkd_input(seed):
    """0-255 pixels through BEiT v2's second-view normalisation."""
    u = base.raw_images((2, 3, 32, 32), seed).float()
    return (u - 127.5) / 127.5


def vqkd_parts(vq, x):
    """VQKD.encode step by step: encoder output (B,C,h,w), task-layer
    output (B,L,d), normalised z (B*L,d), distances (B*L,K)."""
    feats = vq.encoder(x)[0]
    B, C, H, W = feats.shape
    task = vq.encode_task_layer(feats.permute(0, 2, 3, 1).reshape(B, H * W, C))
    z = F.normalize(task, p=2, dim=-1).reshape(-1, task.shape[-1])
    e = vq.quantize.embedding.weight
    d = z.pow(2).sum(dim=1, keepdim=True) + e.pow(2).sum(dim=1) - 2 * torch.einsum('bd,nd->bn', z, e)
    return feats, task, z, d


def kmeans_margin(samples, indices, iters=10):
    """The reference kmeans loop from samples[indices], returning the
    means and the smallest top-2 similarity gap over the iterations."""
    means = samples[indices]
    gap = float('inf')
    for _ in range(iters):
        dists = samples @ means.t()
        gap = min(gap, float((dists.topk(2, dim=-1).values[:, 0] - dists.topk(2, dim=-1).values[:, 1]).min()))
        buckets = dists.max(dim=-1).indices
        bins = torch.bincount(buckets, minlength=means.shape[0])
        zero = bins == 0
        new = torch.zeros_like(means).index_add_(0, buckets, samples) / bins.masked_fill(zero, 1)[..., None]
        means = torch.where(zero[..., None], means, F.normalize(new, p=2, dim=-1))
    return means, gap


def run_vqkd(out_dir):
    name = 'vqkd_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    seeds = dict(init_seed=3301, perturb_seed=3302, x_seed=3303, kmeans_seed=3304)
    cfg = vqkd_cfg()
    vq = build_vqkd(cfg, seeds['init_seed'])
    perturbed = perturb_constants(vq, seeds['perturb_seed'], skip=('quantize.embedding.initted',))
    assert float(vq.quantize.embedding.initted) == 1.0
    path = os.path.join(d, 'vqkd_encoder.pth')
    torch.save(vq.state_dict(), path)
    keys_json(os.path.join(d, 'keys.json'), vq)
    vq2 = build_vqkd(cfg, seeds['init_seed'] + 999)
    vq2.load_state_dict(torch.load(path, map_location='cpu', weights_only=True), strict=True)

    bump = 0
    while True:
        x = vqkd_input(seeds['x_seed'] + bump)
        with torch.no_grad():
            feats, task, z, dist = vqkd_parts(vq, x)
        if top2_margin(-dist, 1) >= MARGIN:
            break
        bump += 1
    # the real forward, on copies (it moves the codebook in place)
    train_copy, eval_copy = copy.deepcopy(vq), copy.deepcopy(vq2).eval()
    with torch.no_grad():
        tokens = train_copy(x)
        tokens_eval = eval_copy(x)
        tokens2 = vq2(x)
    assert torch.equal(tokens, dist.argmin(1).view(2, -1)), 'tokens re-derived'
    assert torch.equal(tokens, tokens_eval) and torch.equal(tokens, tokens2)
    assert not torch.equal(train_copy.quantize.embedding.weight, vq.quantize.embedding.weight)
    assert torch.equal(eval_copy.quantize.embedding.weight, vq.quantize.embedding.weight)
    with torch.no_grad():
        f64, t64, z64, d64 = vqkd_parts(copy.deepcopy(vq).double(), x.double())
    assert torch.equal(d64.argmin(1), dist.argmin(1))

    # kmeans (cosine, 10 iterations) on the normalised vectors
    kbump = 0
    while True:
        torch.manual_seed(seeds['kmeans_seed'] + kbump)
        indices = torch.randperm(z.shape[0])[:KMEANS_CLUSTERS]
        mine, gap = kmeans_margin(z, indices)
        if gap >= MARGIN:
            break
        kbump += 1
    torch.manual_seed(seeds['kmeans_seed'] + kbump)
    means, bins = kmeans(z, KMEANS_CLUSTERS, 10, use_cosine_sim=True)
    assert torch.allclose(means, mine, rtol=0, atol=1e-6), 'kmeans re-derived'

    t = {
        'x': x, 'encoder_features': feats, 'task_features': task,
        'distances': dist, 'tokens': tokens,
        'ema_train.cluster_size': train_copy.quantize.cluster_size,
        'ema_train.embedding.weight': train_copy.quantize.embedding.weight,
        'ema_eval.cluster_size': eval_copy.quantize.cluster_size,
        'kmeans.indices': indices, 'kmeans.means': means, 'kmeans.bins': bins,
    }
    base.save_io(os.path.join(d, 'io.safetensors'), t, name)
    base.write_json(os.path.join(d, 'config.json'), dict(
        target_generator=cfg,
        weight_file='vqkd_encoder.pth: torch.save(vqkd.state_dict()), flat, '
        'keys encoder.*, quantize.*, encode_task_layer.*',
        seeds=seeds,
        perturbed=f'{len(perturbed)} constant tensors (norms, q/v biases, '
        'cls_token: c + 0.1 randn; cluster_size: 0.5 + 4 rand)',
        inputs_note='raw_images (uint8, seeded) mapped by (x - 127.5) / 127.5, '
        'float32, BEiT v2 second view',
        data_seed_bump=bump,
        code_margin=MARGIN,
        margin=base.sig4(top2_margin(-dist, 1)),
        ema_note='ema_train.*: the state after one forward in training mode '
        '(what BEiT v2 does every step); ema_eval.*: after one forward in '
        'eval mode (cluster_size only moves)',
        kmeans=dict(num_clusters=KMEANS_CLUSTERS, num_iters=10,
                    use_cosine_sim=True, seed_bump=kbump,
                    note='indices = torch.randperm(N)[:k] under the seed; '
                    'kmeans redraws the same'),
        float32_error=dict(encoder_features=f32_rel(feats, f64),
                           task_features=f32_rel(task, t64),
                           distances=f32_rel(dist, d64))))
    return dict(case=name, tensors=t, dir=d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--cases', nargs='*', default=None)
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    base.GENERATOR = GENERATOR
    results = [CASES[n](args.out) for n in (args.cases or list(CASES))]
    for r in results:
        size = sum(os.path.getsize(os.path.join(r['dir'], f)) for f in os.listdir(r['dir']))
        print(f'{r["case"]:<12} tensors={len(r["tensors"])} bytes={size}')
        if args.list:
            for k, v in r['tensors'].items():
                print(f'  {k:<40} {str(v.dtype):<14} {list(v.shape)}')
    print(f'{time.monotonic() - t0:.1f} s; all validations passed')
    return 0


CASES = {
    'dalle_tiny': run_dalle,
    'clip_tiny': run_clip,
    'vqkd_tiny': run_vqkd,
}

if __name__ == '__main__':
    sys.exit(main())
