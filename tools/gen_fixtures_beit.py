#!/usr/bin/env python
"""Generate golden fixtures for BEiT v1 and v2 from the REAL MMSelfSup 1.0.0.

    .venv-reference/bin/python tools/gen_fixtures_beit.py --out tests/fixtures [--cases beit_tiny ...] [--list] [--no-keys]

Two algorithm cases, each built by the real registry from a plain dict whose
fields are the real config's except the sizes:

- ``beit_tiny``: ``BEiT`` with ``BEiTViT`` (2 layers, width 16, 32-pixel
  images, patch 8, shared relative position bias, layer scale 0.1),
  ``BEiTV1Head`` + ``BEiTLoss`` and a tiny ``DALL-E`` encoder (``n_hid`` 8, one
  block per group, vocabulary 32: below the attrs validators' minimums of 64
  and 512, so the encoder is built with ``attr.validators.disabled()``; the
  module code is unchanged).
- ``beitv2_tiny``: ``BEiT`` with ``BEiTViT`` (3 layers, ``out_indices
  [-2, -1]``, no final norm), ``BEiTV2Neck`` (``early_layers`` 2, 2 layers),
  ``BEiTV2Head`` and a tiny ``VQKD`` (a 1-layer BEiT encoder on 32-pixel
  images, a 32 x 8 codebook, ``quantize_kmeans_init=False``: the codebook is a
  normalised ``randn`` and ``initted`` is 1, the state a loaded tokenizer
  checkpoint has).

For each: ``model.pth`` (``{'meta', 'state_dict'}``, the tokenizer included),
``keys.json``, ``param_groups.json``, ``config.json`` (the model dict, the
fixture's ``optim_wrapper``: the real config's with ``OptimWrapper`` and lr
1e-3, ``paramwise_cfg`` and ``clip_grad`` verbatim), and ``io.safetensors``:
the raw BGR views (``raw``, ``raw_b``, and ``raw2``, ``raw2_b`` for iteration
2), the preprocessed views (``inputs``, ``inputs_b``), the masks (``mask``,
``mask2``, from the real ``BEiTMaskGenerator``), the tokenizer's output
(``target_logits`` for DALL-E, ``target`` codes for VQ-KD, both iterations),
the backbone and neck outputs, the shared relative position bias, every loss
entry, every gradient and the whole ``state_dict`` after each iteration
(``iter1.*``, ``iter2.*``). ``float32_error2.json`` holds how far each
float32 tensor is from the same two iterations in float64.

The VQ-KD tokenizer stays in training mode in the reference (``BaseModel``
never puts its target generator in eval mode), so every BEiT v2 step moves
its codebook (``quantize.embedding.weight``, normalised EMA, decay 0.99) and
``quantize.cluster_size`` (EMA of the code counts) inside the forward; the
``iter*`` states record both.

Argmax/argmin ties: the tokenizer's codes must not flip under float32
round-off, so the data seed of each batch is advanced (deterministically)
until every position's best and second-best logit (DALL-E) or distance
(VQ-KD) differ by at least ``CODE_MARGIN`` of the scale, in both iterations.

Each run validates itself: replaying both iterations with mmengine's own
``train_step`` from ``model.pth`` gives bit-identical losses and states.
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
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmselfsup.registry import MODELS  # noqa: E402

GENERATOR = 'tools/gen_fixtures_beit.py'
BEIT_CFG = 'beit/beit_vit-base-p16_8xb256-amp-coslr-300e_in1k.py'
BEITV2_CFG = 'beitv2/beitv2_vit-base-p16_8xb256-amp-coslr-300e_in1k.py'
BEITV2_1600_CFG = 'beitv2/beitv2_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py'
BATCH = 2
IMG = 32
CODE_MARGIN = 1e-3
MASK_CFG = dict(
    input_size=(4, 4), num_masking_patches=6, max_num_patches=None,
    min_num_patches=2)
TINY_ARCH = dict(
    embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)


def tiny_arch(layers):
    return dict(TINY_ARCH, num_layers=layers)


def real_model(rel):
    """The config's model dict with the top-level ``data_preprocessor`` the
    Runner puts into it (the BEiT configs define it beside the model)."""
    cfg = Config.fromfile(base.cfg_path(rel))
    model = cfg.model.to_dict()
    model.setdefault('data_preprocessor', cfg.data_preprocessor.to_dict())
    return model


def cfg_beit():
    real = real_model(BEIT_CFG)
    bb = real['backbone']
    return dict(
        type='BEiT',
        data_preprocessor=copy.deepcopy(real['data_preprocessor']),
        backbone=dict(
            type='BEiTViT',
            arch=tiny_arch(2),
            img_size=IMG,
            patch_size=8,
            drop_path_rate=0.0,  # the real config's 0.1 draws torch.rand
            final_norm=bb['final_norm'],
            layer_scale_init_value=bb['layer_scale_init_value'],
            init_cfg=copy.deepcopy(bb['init_cfg'])),
        neck=None,
        head=dict(
            type='BEiTV1Head',
            embed_dims=16,
            num_embed=32,
            loss=copy.deepcopy(real['head']['loss'])),
        target_generator=dict(
            type='DALL-E', n_hid=8, n_blk_per_group=1, vocab_size=32))


def cfg_beitv2():
    real = real_model(BEITV2_CFG)
    bb, nk = real['backbone'], real['neck']
    enc = copy.deepcopy(real['target_generator']['encoder_config'])
    enc.update(arch=dict(TINY_ARCH, num_layers=1), img_size=IMG, patch_size=8)
    return dict(
        type='BEiT',
        data_preprocessor=copy.deepcopy(real['data_preprocessor']),
        backbone=dict(
            type='BEiTViT',
            arch=tiny_arch(3),
            img_size=IMG,
            patch_size=8,
            out_indices=[-2, -1],
            drop_path_rate=0.0,
            final_norm=bb['final_norm'],
            layer_scale_init_value=bb['layer_scale_init_value'],
            init_cfg=copy.deepcopy(bb['init_cfg'])),
        neck=dict(
            type='BEiTV2Neck',
            num_layers=2,
            early_layers=2,
            # a custom arch needs num_layers (checked) and depth (read)
            backbone_arch=dict(tiny_arch(3), depth=3),
            drop_path_rate=0.0,
            layer_scale_init_value=nk['layer_scale_init_value']),
        head=dict(
            type='BEiTV2Head',
            embed_dims=16,
            num_embed=32,
            loss=copy.deepcopy(real['head']['loss'])),
        target_generator=dict(
            type='VQKD',
            encoder_config=enc,
            num_embed=32,
            embed_dims=8,
            quantize_kmeans_init=False))


CASES = {
    'beit_tiny': dict(cfg=cfg_beit, optim=BEIT_CFG, seed=2701),
    'beitv2_tiny': dict(cfg=cfg_beitv2, optim=BEITV2_CFG, seed=2801),
}


def build_model(cfg, init_seed):
    with attr.validators.disabled():
        return base.build_model(cfg, init_seed)


class Batch:
    """Two views (uint8 BGR, as mmcv loads) and the BEiT masks."""

    noise = None

    def __init__(self, images, images_b, masks):
        self.images, self.images_b, self.masks = images, images_b, masks

    def data(self):
        items = []
        for b in range(self.images.shape[0]):
            img = [base.hwc(self.images[b]), base.hwc(self.images_b[b])]
            items.append(base.pack(img, mask=self.masks[b]))
        return base.default_collate(items)

    def inject(self):
        return base.NoInject()


def make_batch(seed, draw_seed):
    return Batch(
        base.raw_images((BATCH, 3, IMG, IMG), seed),
        base.raw_images((BATCH, 3, IMG, IMG), seed + 100000),
        base.beit_masks(BATCH, draw_seed, MASK_CFG))


def code_margin(model, view_b):
    """The smallest gap, relative to the scale, between the best and the
    second-best logit (DALL-E) or codebook distance (VQ-KD)."""
    tg = model.target_generator
    with torch.no_grad():
        if isinstance(tg, MODELS.get('DALL-E')):
            s = tg(view_b).permute(0, 2, 3, 1).reshape(-1, tg.vocab_size)
            top = s.topk(2, dim=1).values
        else:
            feats = tg.encoder(view_b)[0]
            B, C, H, W = feats.shape
            z = tg.encode_task_layer(feats.permute(0, 2, 3, 1).reshape(
                B, H * W, C))
            z = torch.nn.functional.normalize(z, p=2, dim=-1).reshape(-1, z.shape[-1])
            e = tg.quantize.embedding.weight
            d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()
            s = -d
            top = s.topk(2, dim=1).values
    return float((top[:, 0] - top[:, 1]).min() / s.abs().max())


def preprocess(model, batch):
    with torch.no_grad():
        d = model.data_preprocessor(batch.data(), True)
    return d[0][0], d[0][1]


def pick_batches(model0, optim_cfg, seeds):
    """Batches whose codes keep a margin in both iterations (the codebook
    and the weights move in between, so iteration 2 is checked after a real
    step of a scratch copy)."""
    for bump in range(0, 400, 2):
        b1 = make_batch(seeds['data_seed'] + bump, seeds['draw_seed'])
        b2 = make_batch(seeds['data2_seed'] + bump, seeds['draw2_seed'])
        m = copy.deepcopy(model0)
        if code_margin(m, preprocess(m, b1)[1]) < CODE_MARGIN:
            continue
        ow = build_optim_wrapper(m, copy.deepcopy(optim_cfg))
        train_iteration(m, ow, b1, hub=MessageHub.get_current_instance(),
                             clip=True)
        if code_margin(m, preprocess(m, b2)[1]) < CODE_MARGIN:
            continue
        return b1, b2, bump
    raise AssertionError('no batch with a code margin')


def train_iteration(model, ow, batch, hub=None, clip=True):
    """``gen_fixtures_mim.train_iteration`` for a model with a tokenizer: the
    DALL-E encoder's parameters are ``nn.Parameter`` s that require grad
    (its ``requires_grad=False`` reaches only the tensors inside), but the
    forward runs it under ``torch.no_grad()``, so they never get one."""
    return base.train_iteration(model, ow, batch, hub=hub, clip=clip,
                                frozen_prefix='target_generator.')


def install_recorders(name, model, rec):
    rec.out(model.backbone, 'backbone')
    rec.out(model.target_generator, 'target_out')
    rec.out(model.backbone.rel_pos_bias, 'rel_pos_bias')
    if name == 'beitv2_tiny':
        rec.out(model.neck, 'neck')


def intermediates(name, rec):
    t = {'rel_pos_bias': rec.one('rel_pos_bias')}
    outs = rec.one('backbone')
    if name == 'beit_tiny':
        t['latent'] = outs[0]
        t['target_logits'] = rec.one('target_out')
    else:
        t['latent_early'], t['latent'] = outs
        t['target'] = rec.one('target_out')
        t['neck.x'], t['neck.x_cls_pt'] = rec.one('neck')
    return t


def float64_run(model0, optim_cfg, batches):
    """Both iterations in float64 from the same weights and data. DALL-E
    casts its input to float32 (``x.float()``) and insists on it, so its
    forward runs on a float64 input instead."""
    m = copy.deepcopy(model0).double()
    tg = m.target_generator
    if isinstance(tg, MODELS.get('DALL-E')):
        tg.forward = lambda x: tg.blocks(x.double())
        for mod in tg.modules():
            if type(mod).__name__ == 'Conv2d' and hasattr(mod, 'kw'):
                mod.forward = (lambda c: lambda x: torch.nn.functional.conv2d(
                    x, c.w, c.b, padding=(c.kw - 1) // 2))(mod)
    ow = build_optim_wrapper(m, copy.deepcopy(optim_cfg))
    hub = MessageHub.get_current_instance()
    f64 = {}
    for it, batch in enumerate(batches, start=1):
        sfx = '' if it == 1 else '2'
        r = train_iteration(m, ow, batch, hub=hub, clip=True)
        for k, v in r['losses'].items():
            f64[f'loss{sfx}.{k}'] = v.reshape(1)
        f64[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        for k, v in r['grads'].items():
            f64[f'grad{sfx}.{k}'] = v
        f64[f'grad_norm{sfx}'] = base.total_grad_norm(m, ow, r['grads']).reshape(1)
        for k, v in base.clone_sd(m).items():
            f64[f'iter{it}.{k}'] = v
    return f64


def run_case(name, case, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = case['cfg']()
    seeds = base.seeds_of(case)
    optim_cfg, real_ow = base.real_optim_wrapper(case['optim'])
    assert 'clip_grad' in optim_cfg
    hub = MessageHub.get_current_instance()

    model = build_model(cfg, seeds['init_seed'])
    torch.save({
        'meta': dict(base.meta_of(name, seeds['init_seed']), generator=GENERATOR),
        'state_dict': model.state_dict()
    }, os.path.join(d, 'model.pth'))
    base.write_lines_json(os.path.join(d, 'keys.json'), base.keys_entries(model))
    model0 = copy.deepcopy(model)
    batch1, batch2, bump = pick_batches(model0, optim_cfg, seeds)

    ow = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    rec = base.Recorder()
    install_recorders(name, model, rec)
    try:
        in1 = preprocess(model, batch1)
        r1 = train_iteration(model, ow, batch1, hub=hub, clip=True)
    finally:
        rec.close()
    inter = intermediates(name, rec)
    iter1 = base.clone_sd(model)
    rec2 = base.Recorder()
    rec2.out(model.target_generator, 'target_out')
    try:
        in2 = preprocess(model, batch2)
        r2 = train_iteration(model, ow, batch2, hub=hub, clip=True)
    finally:
        rec2.close()
    iter2 = base.clone_sd(model)
    for r in (r1, r2):
        r['grad_norm_t'] = base.total_grad_norm(model, ow, r['grads'])
        assert float(r['grad_norm_t']) == r['grad_norm']
    assert torch.equal(in1[0], r1['inputs']) and torch.equal(in2[0], r2['inputs'])

    # plain re-derivations
    mask = torch.stack([torch.as_tensor(m) for m in batch1.masks]).flatten(1).bool()
    assert int(mask.sum()) == BATCH * MASK_CFG['num_masking_patches']
    if name == 'beit_tiny':
        codes = inter['target_logits'].argmax(1).flatten(1)
        head = model0.head.cls_head
        logits = head(inter['latent'][:, 1:][mask])
        ref = torch.nn.functional.cross_entropy(logits, codes[mask])
        assert torch.allclose(ref, r1['losses']['loss'], rtol=1e-6, atol=0)
    else:
        tg0 = model0.target_generator
        # the codebook moved inside the forward of iteration 1
        assert not torch.equal(iter1['target_generator.quantize.embedding.weight'],
                               tg0.quantize.embedding.weight)
        assert not torch.equal(iter1['target_generator.quantize.cluster_size'],
                               tg0.quantize.cluster_size)
        head = model0.head.cls_head
        codes = inter['target']
        l1 = torch.nn.functional.cross_entropy(head(inter['neck.x'][mask]), codes[mask])
        l2 = torch.nn.functional.cross_entropy(head(inter['neck.x_cls_pt'][mask]), codes[mask])
        assert torch.allclose(l1, r1['losses']['loss_1'], rtol=1e-6, atol=0)
        assert torch.allclose(l2, r1['losses']['loss_2'], rtol=1e-6, atol=0)

    t = {
        'raw': batch1.images, 'raw_b': batch1.images_b,
        'raw2': batch2.images, 'raw2_b': batch2.images_b,
        'inputs': in1[0], 'inputs_b': in1[1], 'inputs2_b': in2[1],
        'mask': torch.stack([torch.as_tensor(m) for m in batch1.masks]),
        'mask2': torch.stack([torch.as_tensor(m) for m in batch2.masks]),
    }
    t.update(inter)
    out2 = rec2.one('target_out')
    t['target_logits2' if name == 'beit_tiny' else 'target2'] = out2
    for sfx, r, state in (('', r1, iter1), ('2', r2, iter2)):
        for k, v in r['losses'].items():
            t[f'loss{sfx}.{k}'] = v.reshape(1)
        t[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        t[f'grad_norm{sfx}'] = r['grad_norm_t'].reshape(1)
        for k, v in r['grads'].items():
            t[f'grad{sfx}.{k}'] = v
        for k, v in state.items():
            t[f'iter{1 if sfx == "" else 2}.{k}'] = v
    tensors = {k: base.stored(v) for k, v in t.items()}
    base.GENERATOR = GENERATOR
    base.save_io(os.path.join(d, 'io.safetensors'), tensors, name)

    f64 = float64_run(model0, optim_cfg, [batch1, batch2])
    err2 = base.float32_error2(f64, tensors)
    base.write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = base.jsonable(optim_cfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(real_ow)
    cfg_json['seeds'] = seeds
    cfg_json['fixture'] = dict(
        lr_note='lr 1e-3 constant (no param_scheduler); AdamW',
        mask_generator=base.jsonable(dict(type='BEiTMaskGenerator', **MASK_CFG)),
        data_seed_bump=bump,
        code_margin=CODE_MARGIN,
        clip_grad_active=[
            bool(float(r['grad_norm_t']) > optim_cfg['clip_grad']['max_norm'])
            for r in (r1, r2)
        ])
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)

    # ---- validation: mmengine's train_step from model.pth, nothing patched
    ckpt = torch.load(os.path.join(d, 'model.pth'), map_location='cpu',
                      weights_only=True)
    m2 = build_model(cfg, seeds['init_seed'] + 999)
    res = m2.load_state_dict(ckpt['state_dict'], strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    ow2 = build_optim_wrapper(m2, copy.deepcopy(optim_cfg))
    assert base.param_groups_of(m2, ow2) == pgroups
    for it, (batch, r, state) in enumerate(((batch1, r1, iter1), (batch2, r2, iter2)), start=1):
        log = m2.train_step(batch.data(), ow2)
        assert torch.equal(log['loss'].detach(), r['parsed']), (name, it)
        for k, v in m2.state_dict().items():
            assert torch.equal(v, state[k]), (name, 'replay', it, k)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                tensors=tensors, dir=d, f32err=cfg_json['float32_error'])


FULL_CONFIGS = [BEIT_CFG, BEITV2_CFG, BEITV2_1600_CFG]


def full_model_keys(out_dir):
    """The full-size state_dict inventories (``beit_keys.json``), built on
    the meta device by ``gen_fixtures_mim.py``'s code."""
    return base.full_model_keys(out_dir, FULL_CONFIGS, 'beit_keys.json')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--cases', nargs='*', default=None)
    ap.add_argument('--no-keys', action='store_true')
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    results = [run_case(n, CASES[n], args.out) for n in (args.cases or list(CASES))]
    if not args.no_keys:
        keys, nbytes = full_model_keys(args.out)
        print('beit_keys.json: ' + ', '.join(
            f'{k} {len(v["keys"])} keys' for k, v in keys.items()))
    for r in results:
        size = sum(os.path.getsize(os.path.join(r['dir'], f)) for f in os.listdir(r['dir']))
        print(f'{r["case"]:<12} loss={r["loss"]:.8f} loss2={r["loss2"]:.8f} '
              f'tensors={len(r["tensors"])} bytes={size} f32err={r["f32err"]}')
        if args.list:
            for k, v in r['tensors'].items():
                print(f'  {k:<64} {str(v.dtype):<14} {list(v.shape)}')
    print(f'{time.monotonic() - t0:.1f} s; all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
