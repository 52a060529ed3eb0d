#!/usr/bin/env python
"""Generate golden fixtures for CAE from the REAL MMSelfSup 1.0.0.

    .venv-reference/bin/python tools/gen_fixtures_cae.py --out tests/fixtures [--list] [--no-keys]

One algorithm case, ``cae_tiny``, built by the real registry from a plain
dict whose fields are the real config's (``_base_/models/cae.py``:
``qkv_bias=False`` with q/v biases, ``init_values=0.1`` in the backbone and
the neck, ``CAELoss(lambd=2)``, ``base_momentum=0.0``,
``CAEDataPreprocessor``) except the sizes:

- ``CAEViT``: 2 layers of width 16 (2 heads, FFN 32), 32-pixel images,
  patch 8 (a 4 x 4 grid);
- ``CAENeck``: 2 regressor layers and 1 decoder layer, ``mlp_ratio`` 2,
  ``num_classes`` 32 (the tokenizer's vocabulary), ``mask_tokens_num`` 6;
- a tiny ``DALL-E`` encoder (``n_hid`` 8, one block per group, vocabulary
  32: below the attrs validators' minimums of 64 and 512, so it is built
  with ``attr.validators.disabled()``; the module code is unchanged), whose
  input, the second view, is 32 pixels (its 4 x 4 codes are the patch grid);
- masks from the real ``BEiTMaskGenerator`` (4 x 4, 6 masked, at least 2 per
  block; python RNG, fixed seeds).

``model.pth`` (``{'meta', 'state_dict'}``: backbone, teacher, neck and
tokenizer), ``keys.json``, ``param_groups.json``, ``config.json`` (the
model dict, the fixture's ``optim_wrapper``: the real config's with
``OptimWrapper`` and lr 1e-3, ``paramwise_cfg`` and ``clip_grad``
verbatim) and ``io.safetensors``: the raw BGR views (``raw``, ``raw_b``;
``raw2``, ``raw2_b`` for iteration 2), the preprocessed views (``inputs``,
``inputs_b``, ``inputs2_b``), the masks (``mask``, ``mask2``), the
backbone's output on the visible patches (``unmasked``), the teacher's
output on the masked patches (``teacher_out``) and the latent target
(``latent_target``, its patch tokens), the neck's pieces (``latent_pred``:
the regressor after ``norm_regressor``; ``decoder``: after
``norm_decoder``; ``logits``), the DALL-E logits of both iterations
(``target_logits``, ``target_logits2``), every loss entry (``loss``,
``main``, ``align``), every gradient, the total gradient norm and the whole
``state_dict`` after each iteration (``iter1.*``, ``iter2.*``, the teacher
included; the frozen DALL-E encoder only in ``model.pth``: asserted
unchanged). ``float32_error2.json`` holds how far each float32 tensor is
from the same two iterations in float64.

The teacher: ``CAE.loss`` runs it and then ``momentum_update()``s it with
the backbone's weights of that iteration (before the optimiser step); with
``base_momentum=0`` it is then an exact copy of those, so it lags the
backbone by one step. Checked here: after iteration 1 the teacher is the
initial backbone, after iteration 2 the backbone of ``iter1``.

Argmax ties: the DALL-E codes must not flip under float32 round-off, so the
data seed of each batch is advanced (deterministically) until every
position's best and second-best logit differ by at least ``CODE_MARGIN`` of
the scale, in both iterations (the tokenizer is frozen).

Each run validates itself: replaying both iterations with mmengine's own
``train_step`` from ``model.pth`` gives bit-identical losses and states, and
the losses are re-derived in plain torch from the recorded pieces.

``cae_config_reference.json`` holds the three CAE configs as MMEngine
resolves them (``Config.fromfile(...).to_dict()``), for the TOML mirrors.

The full-size inventory ``cae_keys.json`` (``cae_vit-base-p16_16xb128``, the
metafile's config, on the meta device: backbone, teacher, neck, the DALL-E
encoder) is written with ``gen_fixtures_mim.full_model_keys``.
"""
import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import gen_fixtures_beit as beit  # noqa: E402  (DALL-E train step, float64)
import attr  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

GENERATOR = 'tools/gen_fixtures_cae.py'
CAE_CFG = 'cae/cae_vit-base-p16_16xb128-amp-coslr-300e_in1k.py'
CAE_CONFIGS = [
    'cae/cae_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    CAE_CFG,
    'cae/cae_vit-base-p16_32xb64-amp-coslr-300e_in1k.py',
]
BATCH = 2
IMG = 32
PATCH = 8
VOCAB = 32
CODE_MARGIN = 1e-3
MASK_CFG = dict(
    input_size=(4, 4), num_masking_patches=6, max_num_patches=None,
    min_num_patches=2)


def cfg_cae():
    real = Config.fromfile(base.cfg_path(CAE_CFG)).model.to_dict()
    bb, nk = real['backbone'], real['neck']
    return dict(
        type='CAE',
        data_preprocessor=copy.deepcopy(real['data_preprocessor']),
        backbone=dict(
            type='CAEViT',
            arch=dict(
                embed_dims=16,
                num_layers=2,
                num_heads=2,
                feedforward_channels=32),
            img_size=IMG,
            patch_size=PATCH,
            init_values=bb['init_values'],
            qkv_bias=bb['qkv_bias']),
        neck=dict(
            type='CAENeck',
            patch_size=PATCH,
            num_classes=VOCAB,
            embed_dims=16,
            num_heads=2,
            regressor_depth=2,
            decoder_depth=1,
            mlp_ratio=2,
            init_values=nk['init_values'],
            mask_tokens_num=MASK_CFG['num_masking_patches']),
        head=copy.deepcopy(real['head']),
        target_generator=dict(
            type='DALL-E', n_hid=8, n_blk_per_group=1, vocab_size=VOCAB),
        base_momentum=real['base_momentum'])


CASES = {'cae_tiny': dict(cfg=cfg_cae, optim=CAE_CFG, seed=2901)}


def build_model(cfg, init_seed):
    with attr.validators.disabled():
        return base.build_model(cfg, init_seed)


def make_batch(seed, draw_seed):
    return beit.Batch(
        base.raw_images((BATCH, 3, IMG, IMG), seed),
        base.raw_images((BATCH, 3, IMG, IMG), seed + 100000),
        base.beit_masks(BATCH, draw_seed, MASK_CFG))


def pick_batches(model0, seeds):
    """Batches whose DALL-E codes keep a margin (the tokenizer is frozen,
    so the initial model decides for both iterations)."""
    for bump in range(0, 400, 2):
        b1 = make_batch(seeds['data_seed'] + bump, seeds['draw_seed'])
        b2 = make_batch(seeds['data2_seed'] + bump, seeds['draw2_seed'])
        if all(
                beit.code_margin(model0, beit.preprocess(model0, b)[1]) >=
                CODE_MARGIN for b in (b1, b2)):
            return b1, b2, bump
    raise AssertionError('no batch with a code margin')


def install_recorders(model, rec):
    rec.out(model.backbone, 'unmasked')
    rec.out(model.teacher, 'teacher_out')
    rec.out(model.target_generator, 'target_logits')
    rec.out(model.neck.norm_regressor, 'latent_pred')
    rec.out(model.neck.norm_decoder, 'decoder')
    rec.out(model.neck, 'logits', pick=lambda o: o[0])


def intermediates(rec):
    t = {k: rec.one(k) for k in (
        'unmasked', 'teacher_out', 'target_logits', 'latent_pred', 'decoder',
        'logits')}
    t['latent_target'] = t['teacher_out'][:, 1:]
    return t


def plain_checks(model0, t, batch, r1, iter1, iter2, init_sd):
    """The losses from the recorded pieces, and the teacher's lag."""
    mask = torch.stack([torch.as_tensor(m) for m in batch.masks])
    mask = mask.flatten(1).bool()
    assert int(mask.sum()) == BATCH * MASK_CFG['num_masking_patches']
    codes = t['target_logits'].argmax(1).flatten(1)[mask]
    main = F.cross_entropy(t['logits'].reshape(-1, VOCAB), codes)
    align = F.mse_loss(t['latent_pred'], t['latent_target']) * 2
    losses = r1['losses']
    assert torch.allclose(main, losses['main'], rtol=1e-6, atol=0)
    assert torch.allclose(align, losses['align'], rtol=1e-6, atol=0)
    assert torch.equal(losses['loss'], losses['main'] + losses['align'])
    assert torch.equal(r1['parsed'], losses['loss'])
    # the head's logits are head(decoder)
    head = model0.neck.head
    assert torch.allclose(head(t['decoder']), t['logits'], rtol=1e-5, atol=1e-6)
    # the visible tokens (+cls) and the masked ones (+cls)
    nm = MASK_CFG['num_masking_patches']
    assert t['unmasked'].shape == (BATCH, 1 + 16 - nm, 16)
    assert t['teacher_out'].shape == (BATCH, 1 + nm, 16)
    # base_momentum 0: the teacher is the backbone before each step
    for k, v in init_sd.items():
        if k.startswith('backbone.'):
            tk = 'teacher.' + k[len('backbone.'):]
            assert torch.equal(init_sd[tk], v), tk
            assert torch.equal(iter1[tk], v), tk
            assert torch.equal(iter2[tk], iter1[k]), tk
    assert not torch.equal(iter1['backbone.cls_token'],
                           init_sd['backbone.cls_token'])


def run_case(name, case, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = case['cfg']()
    seeds = base.seeds_of(case)
    optim_cfg, real_ow = base.real_optim_wrapper(case['optim'])
    assert 'clip_grad' in optim_cfg
    hub = MessageHub.get_current_instance()

    model = build_model(cfg, seeds['init_seed'])
    init_sd = base.clone_sd(model)
    torch.save({
        'meta': dict(base.meta_of(name, seeds['init_seed']),
                     generator=GENERATOR),
        'state_dict': model.state_dict()
    }, os.path.join(d, 'model.pth'))
    base.write_lines_json(
        os.path.join(d, 'keys.json'), base.keys_entries(model))
    model0 = copy.deepcopy(model)
    batch1, batch2, bump = pick_batches(model0, seeds)

    ow = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    rec = base.Recorder()
    install_recorders(model, rec)
    try:
        in1 = beit.preprocess(model, batch1)
        r1 = beit.train_iteration(model, ow, batch1, hub=hub, clip=True)
    finally:
        rec.close()
    inter = intermediates(rec)
    iter1 = base.clone_sd(model)
    rec2 = base.Recorder()
    rec2.out(model.target_generator, 'target_logits')
    try:
        in2 = beit.preprocess(model, batch2)
        r2 = beit.train_iteration(model, ow, batch2, hub=hub, clip=True)
    finally:
        rec2.close()
    iter2 = base.clone_sd(model)
    for r in (r1, r2):
        r['grad_norm_t'] = base.total_grad_norm(model, ow, r['grads'])
        assert float(r['grad_norm_t']) == r['grad_norm']
    assert torch.equal(in1[0], r1['inputs'])
    assert torch.equal(in2[0], r2['inputs'])
    # the second view is x / 255 * 0.8 + 0.1 of the RGB image
    rgb_b = batch1.images_b.flip(1).float()
    assert torch.allclose(in1[1], rgb_b / 255. * 0.8 + 0.1, rtol=0, atol=1e-6)
    assert not any(k.startswith('teacher.') for k in r1['grads'])
    plain_checks(model0, inter, batch1, r1, iter1, iter2, init_sd)

    t = {
        'raw': batch1.images, 'raw_b': batch1.images_b,
        'raw2': batch2.images, 'raw2_b': batch2.images_b,
        'inputs': in1[0], 'inputs_b': in1[1], 'inputs2_b': in2[1],
        'mask': torch.stack([torch.as_tensor(m) for m in batch1.masks]),
        'mask2': torch.stack([torch.as_tensor(m) for m in batch2.masks]),
    }
    t.update(inter)
    t['target_logits2'] = rec2.one('target_logits')
    for sfx, r, state in (('', r1, iter1), ('2', r2, iter2)):
        for k, v in r['losses'].items():
            t[f'loss{sfx}.{k}'] = v.reshape(1)
        t[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        t[f'grad_norm{sfx}'] = r['grad_norm_t'].reshape(1)
        for k, v in r['grads'].items():
            t[f'grad{sfx}.{k}'] = v
        for k, v in state.items():
            if k.startswith('target_generator.'):
                # frozen: recorded once, in model.pth
                assert torch.equal(v, init_sd[k]), k
                continue
            t[f'iter{1 if sfx == "" else 2}.{k}'] = v
    tensors = {k: base.stored(v) for k, v in t.items()}
    base.GENERATOR = GENERATOR
    base.save_io(os.path.join(d, 'io.safetensors'), tensors, name)

    # the config's integer mean/std make int64 buffers, which .double()
    # leaves alone (the float32 run normalises in float32): float64 here
    src64 = copy.deepcopy(model0)
    dp = src64.data_preprocessor
    dp.mean, dp.std = dp.mean.double(), dp.std.double()
    f64 = beit.float64_run(src64, optim_cfg, [batch1, batch2])
    f64 = {k: v for k, v in f64.items() if k in tensors}
    err2 = base.float32_error2(f64, tensors)
    base.write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = base.jsonable(optim_cfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(real_ow)
    cfg_json['seeds'] = seeds
    cfg_json['fixture'] = dict(
        lr_note='lr 1e-3 constant (no param_scheduler); AdamW',
        mask_generator=base.jsonable(
            dict(type='BEiTMaskGenerator', **MASK_CFG)),
        data_seed_bump=bump,
        code_margin=CODE_MARGIN,
        teacher_note='base_momentum 0: after each iteration the teacher '
        'equals the backbone before that iteration\'s optimiser step',
        clip_grad_active=[
            bool(float(r['grad_norm_t']) > optim_cfg['clip_grad']['max_norm'])
            for r in (r1, r2)
        ])
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)

    # ---- validation: mmengine's train_step from model.pth, nothing patched
    ckpt = torch.load(
        os.path.join(d, 'model.pth'), map_location='cpu', weights_only=True)
    m2 = build_model(cfg, seeds['init_seed'] + 999)
    res = m2.load_state_dict(ckpt['state_dict'], strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    ow2 = build_optim_wrapper(m2, copy.deepcopy(optim_cfg))
    assert base.param_groups_of(m2, ow2) == pgroups
    for it, (batch, r, state) in enumerate(
            ((batch1, r1, iter1), (batch2, r2, iter2)), start=1):
        log = m2.train_step(batch.data(), ow2)
        assert torch.equal(log['loss'].detach(), r['parsed']), (name, it)
        for k in ('main', 'align'):
            assert torch.equal(log[k].detach(), r['losses'][k]), (name, it, k)
        for k, v in m2.state_dict().items():
            assert torch.equal(v, state[k]), (name, 'replay', it, k)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                tensors=tensors, dir=d, f32err=cfg_json['float32_error'])


def full_model_keys(out_dir):
    """The full-size state_dict inventory (``cae_keys.json``), built on the
    meta device by ``gen_fixtures_mim.py``'s code."""
    return base.full_model_keys(out_dir, [CAE_CFG], 'cae_keys.json')


def config_reference(out_dir):
    """``cae_config_reference.json``: every CAE config as MMEngine resolves
    it (``_base_`` merged), tuples as lists."""
    res = {
        rel: base.jsonable(Config.fromfile(base.cfg_path(rel)).to_dict())
        for rel in CAE_CONFIGS
    }
    path = os.path.join(out_dir, 'cae_config_reference.json')
    base.write_json(path, res)
    return os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--cases', nargs='*', default=None)
    ap.add_argument('--no-keys', action='store_true')
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    results = [
        run_case(n, CASES[n], args.out) for n in (args.cases or list(CASES))
    ]
    if not args.no_keys:
        nbytes = config_reference(args.out)
        print(f'cae_config_reference.json: {nbytes} bytes')
        keys, nbytes = full_model_keys(args.out)
        print(f'cae_keys.json: {nbytes} bytes: ' + ', '.join(
            f'{k} {len(v["keys"])} keys' for k, v in keys.items()))
    for r in results:
        size = sum(
            os.path.getsize(os.path.join(r['dir'], f))
            for f in os.listdir(r['dir']))
        print(f'{r["case"]:<10} loss={r["loss"]:.8f} loss2={r["loss2"]:.8f} '
              f'tensors={len(r["tensors"])} bytes={size} f32err={r["f32err"]}')
        if args.list:
            for k, v in r['tensors'].items():
                print(f'  {k:<64} {str(v.dtype):<14} {list(v.shape)}')
    print(f'{time.monotonic() - t0:.1f} s; all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
