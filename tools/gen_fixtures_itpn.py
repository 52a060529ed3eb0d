#!/usr/bin/env python
"""Generate golden fixtures for iTPN from the REAL mmpretrain 1.2.0.

    .venv-reference/bin/python tools/gen_fixtures_itpn.py --out tests/fixtures [--no-keys]

Everything is mmpretrain's own code, imported from the pinned package:
``iTPN``, ``iTPNHiViT`` (HiViT's ``PatchEmbed``, ``BlockWithRPE``,
``PatchMerge``, mmcv's ``DropPath``), ``iTPNPretrainDecoder``
(``PatchSplit``, mmpretrain's ``TransformerEncoderLayer``),
``MAEPretrainHead``/``PixelReconstructionLoss``, ``iTPNClipHead``/
``CosineSimilarityLoss``, ``CLIPGenerator`` (``build_clip_model``), MMEngine's
optimiser wrapper with the real configs' ``paramwise_cfg`` and ``clip_grad``.

Two cases, each the real config's model dict with tiny sizes: HiViT
``arch=dict(embed_dims=32, depths=[1, 1, 2], num_heads=2)`` on 32-pixel
images with 8-pixel patches (a 4x4 grid, 4x4 sub-patches per patch),
``drop_path_rate`` 0.1; ``iTPNPretrainDecoder`` with ``fpn_dim`` 16,
``fpn_depth`` 1, three levels; batch 3.

- ``itpn_pixel_tiny``: ``itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e``:
  mask ratio 0.75 (4 of 16 patches kept), a 1-layer decoder of width 32 with
  2 heads, ``MAEPretrainHead(norm_pix=True)``, the model-level Xavier
  ``init_cfg``. Inputs are seeded ``randn`` images passed to ``loss()`` as
  the data preprocessor's output.
- ``itpn_clip_tiny``: ``itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e``:
  ``rpe=True``, ``layer_scale_init_value`` 0.1, ``iTPNClipHead`` to 8
  channels, a tiny CLIP saved here in OpenAI's layout
  (``itpn_clip_tiny/clip_tiny.pth``: vision width 64, one layer, patch 8,
  32-pixel images, ``embed_dim`` 8). Two ``randn`` views (the backbone's
  and CLIP's) and masks from mmpretrain's ``BEiTMaskGenerator`` (4x4, 6
  patches) are passed to ``loss()``.

The optimisers are the real configs' ``optim_wrapper`` as ``OptimWrapper``
with lr 1e-3 (pixel: AdamW (0.9, 0.95), weight decay 0.05 with the
``norm``/``bias``/``pos_embed``/``mask_token`` keys at 0; CLIP: AdamW
(0.9, 0.98), ``clip_grad`` 3, ``.norm``/``.pos_embed``/``.gamma`` at 0).

Randomness: every ``torch.rand`` call of the forward pass is recorded: the
pixel case's mask noise (``draws.mask_noise``, ``[3, 16]``) and each
``DropPath`` call (``draws.blocks.{i}.drop_path``, ``[3]`` per call, the
main stage's blocks twice: attention then MLP, concatenated), for each
iteration (``draws2.*``). The float64 run and the replay reuse them.

Files per case: ``model.pth``, ``keys.json``, ``param_groups.json``,
``config.json``, ``io.safetensors`` (``inputs``/``inputs2``, for CLIP also
``inputs_b``/``inputs2_b`` and ``mask``/``mask2``; the draws; iteration 1's
intermediates: ``feature.{0,1}`` (the stem's maps before each merge, as
``[B, L', h, w, C]``), ``latent``, the pixel ``mask``/``ids_restore`` and
``pred``, or CLIP's ``target`` and the neck's ``feats``; every loss,
gradient and the whole ``state_dict`` after each iteration except the
frozen CLIP), ``float32_error2.json``.

Validation: a second model loaded strictly from ``model.pth`` replays both
iterations bit for bit; the pixel loss is re-derived from the prediction
in plain torch, the CLIP loss from the head's output.

It also writes ``itpn_keys.json``: the state_dict inventories of the
full-size pixel base and large and CLIP base models.
"""
import argparse
import copy
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import mmpretrain  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmpretrain.models.utils import clip_generator_helper as clip_utils  # noqa: E402,E501
from mmpretrain.registry import MODELS, TRANSFORMS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

GENERATOR = 'tools/gen_fixtures_itpn.py'
PIXEL_CFG = 'itpn/itpn-pixel_hivit-base-p16_8xb512-amp-coslr-800e_in1k.py'
PIXEL_L_CFG = 'itpn/itpn-pixel_hivit-large-p16_8xb512-amp-coslr-800e_in1k.py'
CLIP_CFG = 'itpn/itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k.py'
BATCH = 3
IMG = 32
PATCH = 8
GRID = IMG // PATCH
ARCH = dict(embed_dims=32, depths=[1, 1, 2], num_heads=2)
CLIP_FILE = 'itpn_clip_tiny/clip_tiny.pth'
CLIP_TINY = dict(
    embed_dim=8, image_resolution=IMG, vision_layers=1, vision_width=64,
    vision_patch_size=PATCH, context_length=2, vocab_size=4,
    transformer_width=64, transformer_heads=1, transformer_layers=1)
MASK_CFG = dict(input_size=(GRID, GRID), num_masking_patches=6,
                max_num_patches=6, min_num_patches=2)


def real_config(rel):
    root = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'configs')
    return Config.fromfile(os.path.join(root, rel))


def neck_tiny(real_neck, kind):
    n = copy.deepcopy(real_neck)
    n.update(num_patches=GRID * GRID, patch_size=PATCH, embed_dim=32,
             fpn_dim=16, fpn_depth=1, num_outs=3, decoder_embed_dim=32)
    if kind == 'pixel':
        n.update(decoder_depth=1, decoder_num_heads=2)
    return n


def cfg_pixel(_):
    real = real_config(PIXEL_CFG).model.to_dict()
    bb = copy.deepcopy(real['backbone'])
    bb.update(arch=ARCH, img_size=IMG, patch_size=PATCH, drop_path_rate=0.1)
    head = copy.deepcopy(real['head'])
    head.update(patch_size=PATCH)
    return dict(
        type='iTPN',
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0], to_rgb=False),
        backbone=bb, neck=neck_tiny(real['neck'], 'pixel'), head=head,
        init_cfg=real['init_cfg'])


def cfg_clip(clip_path):
    real = real_config(CLIP_CFG).model.to_dict()
    bb = copy.deepcopy(real['backbone'])
    bb.update(arch=ARCH, img_size=IMG, patch_size=PATCH, drop_path_rate=0.1)
    head = copy.deepcopy(real['head'])
    head.update(embed_dims=32, num_embed=CLIP_TINY['embed_dim'])
    dp = real_config(CLIP_CFG).data_preprocessor.to_dict()
    return dict(
        type='iTPN', data_preprocessor=dp, backbone=bb,
        neck=neck_tiny(real['neck'], 'clip'), head=head,
        target_generator=dict(type='CLIPGenerator', tokenizer_path=clip_path))


CASES = {
    'itpn_pixel_tiny': dict(cfg=cfg_pixel, real=PIXEL_CFG, seed=3701),
    'itpn_clip_tiny': dict(cfg=cfg_clip, real=CLIP_CFG, seed=3801),
}


def write_clip(out_dir):
    """A tiny CLIP in OpenAI's layout, with its three int entries."""
    path = os.path.join(out_dir, CLIP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    base.seed_all(3901)
    model = clip_utils.CLIP(**CLIP_TINY)
    sd = dict(model.state_dict())
    for k, v in (('input_resolution', IMG),
                 ('context_length', CLIP_TINY['context_length']),
                 ('vocab_size', CLIP_TINY['vocab_size'])):
        sd[k] = torch.tensor(v, dtype=torch.int64)
    torch.save(sd, path)
    return path


def optim_cfg(rel):
    real = real_config(rel).optim_wrapper.to_dict()
    ow = copy.deepcopy(real)
    ow['type'] = 'OptimWrapper'
    ow.pop('loss_scale', None)
    ow['optimizer']['lr'] = base.SMALL_LR
    return ow, real


def build(cfg, seed):
    base.seed_all(seed)
    model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    model.init_weights()
    model.train()
    return model


class Draws:
    """torch.rand during a forward pass, recorded from a seeded generator
    (``record``) or replayed (``replay``), with the DropPath module that
    asked (``owners``)."""

    def __init__(self, model, seed=None, replay=None):
        self.gen = None if seed is None else torch.Generator().manual_seed(
            seed)
        self.replay = None if replay is None else list(replay)
        self.calls = []
        self.owners = []
        self.model = model

    def __enter__(self):
        self._orig = torch.rand
        self.hooks = []
        for name, m in self.model.backbone.named_modules():
            if type(m).__name__ == 'DropPath':
                self.hooks.append(m.register_forward_pre_hook(
                    lambda mod, inp, name=name: self.owners.append(name)))

        def fake(*size, **kw):
            if len(size) == 1 and isinstance(size[0], (tuple, list)):
                size = tuple(size[0])
            dtype = kw.get('dtype') or torch.float32
            if self.replay is not None:
                v = self.replay[len(self.calls)]
                assert tuple(v.shape) == tuple(size), (v.shape, size)
            else:
                v = self._orig(*size, generator=self.gen)
            self.calls.append(v.clone())
            return v.clone().to(dtype)

        torch.rand = fake
        return self

    def __exit__(self, *a):
        torch.rand = self._orig
        for h in self.hooks:
            h.remove()

    def named(self):
        """``mask_noise`` (pixel) and ``blocks.{i}.drop_path`` per block,
        its calls concatenated in order."""
        out = {}
        calls = list(self.calls)
        if len(calls) == len(self.owners) + 1:
            out['mask_noise'] = calls.pop(0).reshape(-1)
        assert len(calls) == len(self.owners), (len(calls), self.owners)
        for owner, v in zip(self.owners, calls):
            key = owner.rsplit('.drop_path', 1)[0] + '.drop_path'
            out[key] = torch.cat([out[key], v.reshape(-1)]) \
                if key in out else v.reshape(-1)
        return out


def masks(seed):
    random.seed(seed)
    gen = TRANSFORMS.build(dict(type='BEiTMaskGenerator', **MASK_CFG))
    return torch.stack([
        torch.from_numpy(gen(dict())['mask']).long() for _ in range(BATCH)])


def samples(mask):
    out = []
    for m in mask:
        s = DataSample()
        s.set_mask(m)
        out.append(s)
    return out


class Batch:

    def __init__(self, kind, seed):
        g = torch.Generator().manual_seed(seed)
        self.img = torch.randn(BATCH, 3, IMG, IMG, generator=g)
        self.img_b = torch.randn(BATCH, 3, IMG, IMG, generator=g)
        self.mask = masks(seed) if kind == 'clip' else None

    def call(self, model, dtype=torch.float32):
        if self.mask is None:
            return model.loss(self.img.to(dtype), None)
        return model.loss([self.img.to(dtype), self.img_b.to(dtype)],
                          samples(self.mask))


def train_iteration(model, ow, batch, draws, dtype=torch.float32):
    with draws:
        losses = batch.call(model, dtype)
    parsed, _ = model.parse_losses(losses)
    ow.backward(parsed)
    grads = {}
    for k, p in model.named_parameters():
        if k.startswith('target_generator.') or not p.requires_grad:
            assert p.grad is None, k
            continue
        assert p.grad is not None, k
        grads[k] = p.grad.detach().clone()
    ow.step()
    ow.zero_grad()
    return dict(losses={k: v.detach().clone() for k, v in losses.items()},
                parsed=parsed.detach().clone(), grads=grads)


def state_of(model):
    return {k: v for k, v in base.clone_sd(model).items()
            if not k.startswith('target_generator.')}


def intermediates(kind, model, batch, calls):
    """Iteration 1's pieces, re-run on a copy with the same draws."""
    m = copy.deepcopy(model)
    rec = {}
    m.backbone.register_forward_hook(
        lambda mod, i, o: rec.__setitem__('backbone', o))
    m.neck.register_forward_hook(
        lambda mod, i, o: rec.__setitem__('neck', o.detach()))
    if kind == 'clip':
        m.target_generator.register_forward_hook(
            lambda mod, i, o: rec.__setitem__('target', o[0].detach()))
    with Draws(m, replay=calls):
        loss = batch.call(m)['loss']
    t = {}
    if kind == 'pixel':
        outs, mask, ids_restore = rec['backbone']
        t.update(mask=mask, ids_restore=ids_restore, pred=rec['neck'])
    else:
        outs = rec['backbone']
        t.update(target=rec['target'], feats=rec['neck'])
    t.update({'feature.0': outs[0], 'feature.1': outs[1], 'latent': outs[2]})
    t = {k: v.detach().clone() for k, v in t.items()}
    # plain-torch losses
    if kind == 'pixel':
        p, B = PATCH, BATCH
        img = batch.img
        x = img.reshape(B, 3, GRID, p, GRID, p)
        x = torch.einsum('nchpwq->nhwpqc', x).reshape(B, GRID * GRID, -1)
        x = (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) +
                                              1.e-6)**.5
        per = ((t['pred'] - x)**2).mean(-1)
        want = (per * t['mask']).sum() / t['mask'].sum()
        assert int(t['mask'].sum()) == B * (GRID * GRID - 4)
    else:
        logits = m.head.cls_head(t['feats'])
        sel = batch.mask.flatten(1).bool()
        a = F.normalize(logits[sel], dim=-1)
        b = F.normalize(t['target'][:, 1:][sel], dim=-1)
        want = (-(a * b).sum(-1)).mean()
    assert torch.allclose(want, loss, rtol=1e-5, atol=1e-7), (want, loss)
    return t


def run_case(name, case, out_dir, clip_path):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    kind = 'clip' if 'clip' in name else 'pixel'
    cfg = case['cfg'](clip_path)
    ocfg, oreal = optim_cfg(case['real'])
    seed = case['seed']

    model = build(cfg, seed)
    meta = base.meta_of(name, seed)
    meta['mmpretrain_version'] = str(mmpretrain.__version__)
    torch.save({'meta': meta, 'state_dict': model.state_dict()},
               os.path.join(d, 'model.pth'))
    base.write_lines_json(os.path.join(d, 'keys.json'),
                          base.keys_entries(model))
    ow = build_optim_wrapper(model, copy.deepcopy(ocfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    b1, b2 = Batch(kind, seed + 10), Batch(kind, seed + 11)

    dr1 = Draws(model, seed=seed + 20)
    r1 = train_iteration(model, ow, b1, dr1)
    iter1 = state_of(model)
    dr2 = Draws(model, seed=seed + 21)
    r2 = train_iteration(model, ow, b2, dr2)
    iter2 = state_of(model)

    def fresh(s, dtype=torch.float32):
        m = build(cfg, s).to(dtype)
        ckpt = torch.load(os.path.join(d, 'model.pth'), map_location='cpu',
                          weights_only=True)
        res = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not res.missing_keys and not res.unexpected_keys
        return m

    t = intermediates(kind, fresh(seed + 1), b1, dr1.calls)
    t.update(inputs=b1.img, inputs2=b2.img)
    if kind == 'clip':
        t.update(inputs_b=b1.img_b, inputs2_b=b2.img_b, mask=b1.mask,
                 mask2=b2.mask)
    for sfx, dr in (('', dr1), ('2', dr2)):
        for k, v in dr.named().items():
            t[f'draws{sfx}.{k}'] = v
    for sfx, r, state in (('', r1, iter1), ('2', r2, iter2)):
        for k, v in r['losses'].items():
            t[f'loss{sfx}.{k}'] = v.reshape(1)
        t[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        for k, v in r['grads'].items():
            t[f'grad{sfx}.{k}'] = v
        for k, v in state.items():
            t[f'iter{1 if sfx == "" else 2}.{k}'] = v
    tensors = {k: base.stored(v) for k, v in t.items()}
    base.GENERATOR = GENERATOR
    base.save_io(os.path.join(d, 'io.safetensors'), tensors, name)

    # float64: the same two iterations with the same draws
    m64 = fresh(seed + 2, torch.float64)
    # CLIP's LayerNorm casts its input to float32 (an fp16 guard): run it in
    # the input's dtype.
    for mod in m64.modules():
        if isinstance(mod, clip_utils.LayerNorm):
            mod.forward = (lambda n: lambda x: torch.nn.LayerNorm.forward(n, x))(mod)
    ow64 = build_optim_wrapper(m64, copy.deepcopy(ocfg))
    f64 = {}
    for it, b, dr in ((1, b1, dr1), (2, b2, dr2)):
        sfx = '' if it == 1 else '2'
        r = train_iteration(
            m64, ow64, b, Draws(m64, replay=[c.double() for c in dr.calls]),
            torch.float64)
        for k, v in r['losses'].items():
            f64[f'loss{sfx}.{k}'] = v.reshape(1)
        f64[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        for k, v in r['grads'].items():
            f64[f'grad{sfx}.{k}'] = v
        for k, v in state_of(m64).items():
            f64[f'iter{it}.{k}'] = v
    err2 = base.float32_error2(f64, tensors)
    base.write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    # replay from model.pth: bit-identical
    m2 = fresh(seed + 3)
    ow2 = build_optim_wrapper(m2, copy.deepcopy(ocfg))
    assert base.param_groups_of(m2, ow2) == pgroups
    for b, dr, r, state in ((b1, dr1, r1, iter1), (b2, dr2, r2, iter2)):
        q = train_iteration(m2, ow2, b, Draws(m2, replay=dr.calls))
        for k, v in q['losses'].items():
            assert torch.equal(v, r['losses'][k]), k
        for k, v in q['grads'].items():
            assert torch.equal(v, r['grads'][k]), k
        for k, v in state_of(m2).items():
            assert torch.equal(v, state[k]), k

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    if kind == 'clip':
        cfg_json['target_generator']['tokenizer_path'] = CLIP_FILE
        cfg_json['target_generator']['arch'] = dict(CLIP_TINY)
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = base.jsonable(ocfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(oreal)
    cfg_json['fixture'] = dict(
        reference=f'mmpretrain {mmpretrain.__version__} {case["real"]}',
        lr_note='lr 1e-3 constant (no param_scheduler)')
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                tensors=tensors, f32err=cfg_json['float32_error'])


def full_keys(out_dir):
    entries = {}
    clip_b16 = dict(
        embed_dim=512, image_resolution=224, vision_layers=12,
        vision_width=768, vision_patch_size=16, context_length=77,
        vocab_size=49408, transformer_width=512, transformer_heads=8,
        transformer_layers=12)
    clip_sd = {k: torch.zeros_like(v)
               for k, v in clip_utils.CLIP(**clip_b16).state_dict().items()}
    import mmpretrain.models.selfsup.milan as milan
    orig = milan._load_checkpoint
    milan._load_checkpoint = lambda path: dict(clip_sd)
    try:
        for rel in (PIXEL_CFG, PIXEL_L_CFG, CLIP_CFG):
            cfg = real_config(rel).model.to_dict()
            cfg.pop('data_preprocessor', None)
            # on the CPU: HiViT reads its drop-path rates with .item()
            model = MODELS.build(ConfigDict(cfg))
            pn = dict(model.named_parameters())
            sd = model.state_dict()
            name = os.path.basename(rel)[:-3]
            entries[name] = dict(
                config=rel,
                num_state_dict_elements=int(
                    sum(v.numel() for v in sd.values())),
                num_trainable_params=int(
                    sum(p.numel() for p in pn.values() if p.requires_grad)),
                keys=[[k, list(v.shape), str(v.dtype).replace('torch.', ''),
                       k in pn, bool(k in pn and pn[k].requires_grad)]
                      for k, v in sd.items()])
    finally:
        milan._load_checkpoint = orig
    path = os.path.join(out_dir, 'itpn_keys.json')
    with open(path, 'w') as f:
        f.write('{\n "note": ' + json.dumps(
            'state_dict of the full-size models of mmpretrain 1.2.0 '
            'configs/itpn (the CLIP target built from a zero '
            'ViT-B/16 CLIP in OpenAI\'s layout): keys as [key, shape, '
            'dtype, is_parameter, requires_grad] in state_dict order') + ',\n')
        names = list(entries)
        for i, name in enumerate(names):
            e = entries[name]
            f.write(f' {json.dumps(name)}: {{\n')
            for k in ('config', 'num_state_dict_elements',
                      'num_trainable_params'):
                f.write(f'  {json.dumps(k)}: {json.dumps(e[k])},\n')
            f.write('  "keys": [\n' + ',\n'.join(
                '   ' + json.dumps(x, separators=(',', ':'))
                for x in e['keys']) + '\n  ]\n }' +
                (',' if i + 1 < len(names) else '') + '\n')
        f.write('}\n')
    json.load(open(path))
    return entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--no-keys', action='store_true')
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    clip_path = write_clip(args.out)
    for name, case in CASES.items():
        r = run_case(name, case, args.out, clip_path)
        print(f'{r["case"]}: loss={r["loss"]:.8f} loss2={r["loss2"]:.8f} '
              f'tensors={len(r["tensors"])} f32 vs f64: ' + ' '.join(
                  f'{p} {v[0]:.1e}' for p, v in r['f32err'].items()))
    if not args.no_keys:
        for n, v in full_keys(args.out).items():
            print(f'{n}: {len(v["keys"])} keys, '
                  f'{v["num_state_dict_elements"]} elements')
    print(f'{time.monotonic() - t0:.1f} s; all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
