#!/usr/bin/env python
"""Generate golden MAE test fixtures from the REAL MMSelfSup 1.0.0 reference.

What it does
------------
For each small MAE case in ``CASES`` it:

1. builds ``mmselfsup.models.algorithms.MAE`` (MAEViT backbone,
   MAEPretrainDecoder neck, MAEPretrainHead + MAEReconstructionLoss,
   SelfSupDataPreprocessor) through the mmselfsup registry from a plain dict
   config, exactly as a user config would (``register_all_modules()`` +
   ``MODELS.build``). The model-level ``init_cfg`` is copied verbatim from
   ``configs/selfsup/_base_/models/mae_vit-base-p16.py``;
2. seeds torch and calls ``model.init_weights()`` as mmengine's Runner does,
   and saves the weights as ``model.pth`` in the layout of a real MMSelfSup
   checkpoint (``{'meta': ..., 'state_dict': ...}``);
3. builds the optimiser with mmengine's ``build_optim_wrapper`` from the
   MAE ``optim_wrapper`` of the real config (lr replaced by 1e-3);
4. runs one training step (data preprocessor -> ``model(..., mode='loss')``
   -> ``parse_losses`` -> backward -> ``optim_wrapper.step()``) with seeded
   masking noise injected into ``MAEViT.random_masking``, and records the
   intermediate tensors, every gradient and every parameter after the step in
   ``io.safetensors``;
5. validates everything against an independent replay: a fresh model loaded
   from ``model.pth`` runs mmengine's real ``model.train_step`` with the torch
   RNG seeded so that ``torch.rand`` inside ``random_masking`` draws the same
   noise (no monkeypatching), and the loss / parameters after the step must
   match bit for bit. The loss is also recomputed in plain torch.

It also writes ``mae_vit_b_keys.json`` (state_dict keys/shapes of the real
ViT-B/L/H MAE configs, built on the meta device) and
``mae_config_reference.json`` (the fully resolved 300e ViT-B config).

How to run
----------
    .venv-reference/bin/python tools/gen_fixtures.py --out tests/fixtures

The reference venv (MMSelfSup 1.0.0, mmcls 1.0.0rc6, mmengine 0.10.7,
mmcv-lite 2.0.1, torch 2.9.0, CPU; pinned in ``tools/reference/``) is created
by ``tools/reference/setup.sh`` (default ``.venv-reference``); it is NOT
committed. ``tools/fixtures.py --check`` reruns every generator and compares
the results with ``tests/fixtures/SHA256SUMS``.
The generated fixtures ARE committed, so the Rust tests never need Python.
Everything is float32 on CPU with fixed seeds; re-running reproduces the files.
See tools/README.md for the meaning, dtype and layout of every tensor.
"""
import argparse
import copy
import json
import os
import random
import sys
import warnings

warnings.filterwarnings('ignore')

import pin_cpu_kernels  # noqa: E402,F401  (AVX2 kernels; before torch, see that file)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import mmcls  # noqa: E402
import mmengine  # noqa: E402
import mmselfsup  # noqa: E402
from mmcls.models import VisionTransformer  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmselfsup.registry import MODELS  # noqa: E402
from mmselfsup.structures import SelfSupDataSample  # noqa: E402
from mmselfsup.utils import register_all_modules  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

MMSELFSUP_DIR = os.path.dirname(mmselfsup.__file__)
CONFIG_DIR = os.path.join(MMSELFSUP_DIR, '.mim', 'configs', 'selfsup')
MAE_B_300E = os.path.join(
    CONFIG_DIR, 'mae', 'mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
MAE_L_300E = os.path.join(
    CONFIG_DIR, 'mae', 'mae_vit-large-p16_8xb512-amp-coslr-300e_in1k.py')
MAE_H_1600E = os.path.join(
    CONFIG_DIR, 'mae', 'mae_vit-huge-p16_8xb512-amp-coslr-1600e_in1k.py')
# The optim_wrapper (with paramwise_cfg) lives in this file; the 300e config
# inherits it through the 400e-amp config (which only switches the type to
# AmpOptimWrapper).
MAE_B_400E_NOAMP = os.path.join(
    CONFIG_DIR, 'mae', 'mae_vit-base-p16_8xb512-coslr-400e_in1k.py')

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

# Small-config learning rate (the real one is 1.5e-4 * 4096 / 256 = 2.4e-3).
SMALL_LR = 1e-3

CASES = {
    'mae_tiny_normpix':
    dict(
        img_size=32,
        patch_size=8,
        mask_ratio=0.75,
        norm_pix=True,
        batch_size=2,
        init_seed=1234,
        data_seed=2345,
        noise_seed=3456),
    'mae_tiny_plain':
    dict(
        img_size=16,
        patch_size=4,
        mask_ratio=0.5,
        norm_pix=False,
        batch_size=3,
        init_seed=4321,
        data_seed=5432,
        noise_seed=6543),
}


def real_optim_wrapper_cfg():
    """The MAE optim_wrapper of the real config, lr swapped for SMALL_LR."""
    cfg = Config.fromfile(MAE_B_300E)
    ow = cfg.optim_wrapper.to_dict()
    # Drop the AMP wrapper settings of the -amp- config: the fixtures are
    # float32 on CPU. The 400e non-amp config has the same optimizer and
    # paramwise_cfg with type='OptimWrapper'.
    noamp = Config.fromfile(MAE_B_400E_NOAMP).optim_wrapper.to_dict()
    assert noamp['optimizer'] == ow['optimizer'], (noamp, ow)
    assert noamp['paramwise_cfg'] == ow['paramwise_cfg'], (noamp, ow)
    assert noamp['type'] == 'OptimWrapper'
    out = copy.deepcopy(noamp)
    out['optimizer']['lr'] = SMALL_LR
    return out, ow


def model_cfg(case):
    p = case['patch_size']
    n = (case['img_size'] // p)**2
    base = Config.fromfile(
        os.path.join(CONFIG_DIR, '_base_', 'models',
                     'mae_vit-base-p16.py')).model.to_dict()
    return dict(
        type='MAE',
        data_preprocessor=dict(mean=MEAN, std=STD, bgr_to_rgb=True),
        backbone=dict(
            type='MAEViT',
            arch=dict(
                embed_dims=32,
                num_layers=2,
                num_heads=4,
                feedforward_channels=64),
            img_size=case['img_size'],
            patch_size=p,
            mask_ratio=case['mask_ratio']),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=n,
            patch_size=p,
            in_chans=3,
            embed_dim=32,
            decoder_embed_dim=24,
            decoder_depth=2,
            decoder_num_heads=3,
            mlp_ratio=2.),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=case['norm_pix'],
            patch_size=p,
            loss=dict(type='MAEReconstructionLoss')),
        # verbatim from configs/selfsup/_base_/models/mae_vit-base-p16.py
        init_cfg=copy.deepcopy(base['init_cfg']),
    )


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg, init_seed):
    seed_all(init_seed)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    model.train()
    return model


def make_data(raw):
    return {
        'inputs': [raw.clone()],
        'data_samples': [SelfSupDataSample() for _ in range(raw.shape[0])],
    }


class InjectRand:
    """Replace torch.rand for the single call in MAEViT.random_masking."""

    def __init__(self, noise):
        self.noise = noise
        self.calls = 0

    def __enter__(self):
        self._orig = torch.rand

        def fake(*size, **kwargs):
            if len(size) == 1 and isinstance(size[0], (tuple, list)):
                size = tuple(size[0])
            assert tuple(size) == tuple(self.noise.shape), size
            self.calls += 1
            return self.noise.clone().to(kwargs.get('device', 'cpu'))

        torch.rand = fake
        return self

    def __exit__(self, *a):
        torch.rand = self._orig


def param_groups_of(model, optim_wrapper):
    pid = {id(p): k for k, p in model.named_parameters()}
    out = {}
    for g in optim_wrapper.optimizer.param_groups:
        for p in g['params']:
            out[pid[id(p)]] = dict(
                lr=g['lr'], weight_decay=g['weight_decay'], in_optimizer=True)
    for k, p in model.named_parameters():
        if k not in out:
            out[k] = dict(lr=None, weight_decay=None, in_optimizer=False)
    return {k: out[k] for k, _ in model.named_parameters()}


def reference_loss(pred, target, mask):
    loss = ((pred - target)**2).mean(-1)
    return (loss * mask).sum() / mask.sum()


def run_case(name, case, out_dir, optim_cfg):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = model_cfg(case)
    B, S, p = case['batch_size'], case['img_size'], case['patch_size']
    L = (S // p)**2

    model = build_model(cfg, case['init_seed'])
    init_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pnames = dict(model.named_parameters())

    # ---- checkpoint in the real MMSelfSup layout
    meta = dict(
        mmselfsup_version=str(mmselfsup.__version__),
        mmcls_version=str(mmcls.__version__),
        mmengine_version=str(mmengine.__version__),
        torch_version=str(torch.__version__),
        epoch=0,
        iter=0,
        seed=case['init_seed'],
        fixture_case=name,
        generator='tools/gen_fixtures.py')
    torch.save({'meta': meta, 'state_dict': model.state_dict()},
               os.path.join(d, 'model.pth'))

    keys = []
    for k, v in model.state_dict().items():
        keys.append(
            dict(
                key=k,
                shape=list(v.shape),
                dtype=str(v.dtype).replace('torch.', ''),
                is_parameter=k in pnames,
                requires_grad=bool(k in pnames and pnames[k].requires_grad)))
    with open(os.path.join(d, 'keys.json'), 'w') as f:
        json.dump(keys, f, indent=1)

    # ---- optimiser (built before the forward, as the Runner does)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    pgroups = param_groups_of(model, optim_wrapper)
    with open(os.path.join(d, 'param_groups.json'), 'w') as f:
        json.dump(pgroups, f, indent=1)

    # ---- data: uint8 BGR images as mmcv loads them, and the masking noise
    g = torch.Generator().manual_seed(case['data_seed'])
    raw = torch.randint(0, 256, (B, 3, S, S), generator=g, dtype=torch.uint8)
    g = torch.Generator().manual_seed(case['noise_seed'])
    noise = torch.rand(B, L, generator=g)

    # ---- capture hooks
    cap = {}
    h1 = model.backbone.register_forward_hook(
        lambda m, i, o: cap.__setitem__('backbone', o))
    h2 = model.neck.register_forward_hook(
        lambda m, i, o: cap.__setitem__('neck', o))

    # ---- unmasked backbone features (mmcls VisionTransformer.forward on the
    #      same weights: final LN applied, returns [patch_token, cls_token])
    with torch.no_grad():
        inputs_nm, _ = model.data_preprocessor(make_data(raw), True)
        outs = VisionTransformer.forward(model.backbone, inputs_nm[0])
        feat_patch, feat_cls = outs[-1]
    cap.clear()

    # ---- one training step, identical to BaseModel.train_step but with the
    #      gradient recorded between backward and step
    with InjectRand(noise) as inj:
        with optim_wrapper.optim_context(model):
            data = model.data_preprocessor(make_data(raw), True)
            losses = model._run_forward(data, mode='loss')
    assert inj.calls == 1, inj.calls
    parsed, log_vars = model.parse_losses(losses)
    inputs = data[0][0].detach().clone()
    latent, mask, ids_restore = cap['backbone']
    pred = cap['neck']
    target = model.head.construct_target(inputs).detach()
    h1.remove()
    h2.remove()

    ref = reference_loss(pred.detach(), target, mask)
    assert torch.allclose(ref, parsed.detach(), rtol=1e-6, atol=0), \
        (ref, parsed)
    assert torch.equal(inputs_nm[0], inputs)

    optim_wrapper.backward(parsed)
    grads = {}
    for k, prm in model.named_parameters():
        if prm.requires_grad:
            assert prm.grad is not None, k
            grads[k] = prm.grad.detach().clone()
        else:
            assert prm.grad is None, k
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    after = {k: v.detach().clone() for k, v in model.named_parameters()}

    tensors = {
        'raw': raw.float(),
        'inputs': inputs,
        'noise': noise,
        'latent': latent.detach(),
        'mask': mask.detach(),
        'ids_restore': ids_restore.detach().to(torch.int64),
        'pred': pred.detach(),
        'target': target,
        'loss': parsed.detach().reshape(1),
        'feat_cls': feat_cls.detach(),
        'feat_patch': feat_patch.detach(),
    }
    for k, v in grads.items():
        tensors[f'grad.{k}'] = v
    for k, v in after.items():
        tensors[f'after_step.{k}'] = v
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    for k, v in tensors.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
    save_file(
        tensors,
        os.path.join(d, 'io.safetensors'),
        # one metadata key only: safetensors writes a HashMap, so several
        # keys would come out in a random order and break byte-identity
        metadata={
            'generator':
            f'tools/gen_fixtures.py case={name} '
            f'mmselfsup={mmselfsup.__version__} torch={torch.__version__}'
        })

    # ---- config.json
    opt = optim_wrapper.optimizer
    cfg_json = copy.deepcopy(cfg)
    cfg_json['batch_size'] = B
    cfg_json['optim_wrapper'] = optim_cfg
    cfg_json['optimizer_resolved'] = dict(
        type=type(opt).__name__,
        **{k: (list(v) if isinstance(v, tuple) else v)
           for k, v in opt.defaults.items()
           if isinstance(v, (int, float, bool, tuple, type(None)))})
    cfg_json['seeds'] = dict(
        init_seed=case['init_seed'],
        data_seed=case['data_seed'],
        noise_seed=case['noise_seed'])
    cfg_json['derived'] = dict(
        num_patches=L,
        len_keep=int(L * (1 - case['mask_ratio'])),
        patch_dim=p * p * 3)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(cfg_json, f, indent=1)

    # ================= validation: independent replay ====================
    model2 = build_model(cfg, case['init_seed'] + 999)  # different init
    ckpt = torch.load(
        os.path.join(d, 'model.pth'), map_location='cpu', weights_only=True)
    missing = model2.load_state_dict(ckpt['state_dict'], strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    for k, v in model2.state_dict().items():
        assert torch.equal(v, init_sd[k]), k
    ow2 = build_optim_wrapper(model2, copy.deepcopy(optim_cfg))
    assert param_groups_of(model2, ow2) == pgroups
    # Same RNG state: torch.rand(N, L) in random_masking draws `noise`.
    torch.manual_seed(case['noise_seed'])
    log2 = model2.train_step(make_data(raw), ow2)
    assert torch.equal(log2['loss'].detach(), parsed.detach()), \
        (log2['loss'], parsed)
    for k, v in model2.named_parameters():
        assert torch.equal(v.detach(), after[k]), k
    # Re-running the forward on the reloaded initial weights reproduces the
    # latent / pred exactly (RNG path again).
    model3 = build_model(cfg, case['init_seed'] + 7)
    model3.load_state_dict(ckpt['state_dict'])
    torch.manual_seed(case['noise_seed'])
    with torch.no_grad():
        lat3, m3, ir3 = model3.backbone(inputs)
        pred3 = model3.neck(lat3, ir3)
        loss3 = model3.head(pred3, inputs, m3)
    assert torch.equal(lat3, latent) and torch.equal(m3, mask)
    assert torch.equal(ir3, ids_restore) and torch.equal(pred3, pred)
    assert torch.equal(loss3, parsed.detach())

    n_keep = int(L * (1 - case['mask_ratio']))
    assert latent.shape == (B, 1 + n_keep, 32)
    assert int(mask.sum()) == B * (L - n_keep)

    return dict(
        case=name,
        loss=float(parsed),
        n_tensors=len(tensors),
        n_params=sum(v.numel() for v in init_sd.values()),
        tensors=tensors,
        pgroups=pgroups,
        keys=keys,
        dir=d)


def full_model_keys(out_dir):
    """Keys/shapes of the real ViT-B/L/H MAE models (meta device)."""
    res = {}
    for arch, path in [('b', MAE_B_300E), ('l', MAE_L_300E),
                       ('h', MAE_H_1600E)]:
        cfg = Config.fromfile(path)
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        pn = dict(model.named_parameters())
        sd = model.state_dict()
        res[arch] = dict(
            config=os.path.relpath(path, CONFIG_DIR),
            num_state_dict_elements=int(sum(v.numel() for v in sd.values())),
            num_trainable_params=int(
                sum(p.numel() for p in pn.values() if p.requires_grad)),
            requires_grad_false=[
                k for k, p in pn.items() if not p.requires_grad
            ],
            keys=[[k, list(v.shape)] for k, v in sd.items()])
        del model
    with open(os.path.join(out_dir, 'mae_vit_b_keys.json'), 'w') as f:
        json.dump(res, f, indent=1)
    return res


def config_reference(out_dir):
    cfg = Config.fromfile(MAE_B_300E)
    d = cfg._cfg_dict.to_dict()
    d['_source'] = dict(
        file=os.path.relpath(MAE_B_300E, CONFIG_DIR),
        package='mmselfsup ' + mmselfsup.__version__,
        note='mmengine Config.fromfile(...)._cfg_dict.to_dict(); '
        'tuples appear as JSON lists')
    with open(os.path.join(out_dir, 'mae_config_reference.json'), 'w') as f:
        json.dump(d, f, indent=1, default=str)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument(
        '--list', action='store_true', help='print every tensor name')
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='ERROR')
    MMLogger.get_current_instance().setLevel('ERROR')
    os.makedirs(args.out, exist_ok=True)

    optim_cfg, real_ow = real_optim_wrapper_cfg()
    print('real optim_wrapper (300e, amp):', real_ow)
    print('fixture optim_wrapper        :', optim_cfg)

    results = [
        run_case(n, c, args.out, optim_cfg) for n, c in CASES.items()
    ]
    keys = full_model_keys(args.out)
    config_reference(args.out)

    print()
    print(f'{"case":<20} {"loss":>14} {"#tensors":>9} {"#elems":>8}  files')
    for r in results:
        sizes = ', '.join(
            f'{f}={os.path.getsize(os.path.join(r["dir"], f))}'
            for f in sorted(os.listdir(r['dir'])))
        print(f'{r["case"]:<20} {r["loss"]:>14.8f} {r["n_tensors"]:>9} '
              f'{r["n_params"]:>8}  {sizes}')
    for arch, v in keys.items():
        print(f'ViT-{arch}: {len(v["keys"])} keys, '
              f'{v["num_state_dict_elements"]} elements, frozen '
              f'{v["requires_grad_false"]}')
    total = 0
    for root, _, files in os.walk(args.out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f'total bytes under {args.out}: {total}')

    if args.list:
        for r in results:
            print(f'\n== {r["case"]}/io.safetensors')
            for k, v in r['tensors'].items():
                print(f'  {k:<60} {str(v.dtype):<14} {list(v.shape)}')
            print(f'== {r["case"]} param groups')
            for k, v in r['pgroups'].items():
                print(f'  {k:<55} {v}')
    print('all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
