#!/usr/bin/env python
"""Generate golden fixtures for fine-tuning (mmcls's ``ImageClassifier``)
from the REAL mmcls 1.0.0rc6 and MMSelfSup 1.0.0.

    .venv-reference/bin/python tools/gen_fixtures_finetune.py --out tests/fixtures

Everything is the reference's own code, imported from the pinned packages:
``ImageClassifier``, ``VisionTransformer`` (``avg_token``, mmcv's
``DropPath``), ``ResNet``, ``GlobalAveragePooling``, ``LinearClsHead``,
``LabelSmoothLoss``, ``CrossEntropyLoss``, ``ClsDataPreprocessor`` with
``RandomBatchAugment``, ``Mixup`` and ``CutMix``, MMEngine's optimiser
wrapper with the real configs' ``optim_wrapper`` (for the ViT, MMSelfSup's
``LearningRateDecayOptimWrapperConstructor``).

Two cases, each the real MMSelfSup benchmark config's model dict with tiny
sizes, 5 classes, batch 4, lr 1e-3 (no scheduler):

- ``finetune_vit_tiny``: ``benchmarks/classification/imagenet/
  vit-base-p16_ft-8xb128-coslr-100e_in1k.py``: ViT ``arch=dict(embed_dims=32,
  num_layers=2, num_heads=2, feedforward_channels=64)`` on 16-pixel images
  with 4-pixel patches, ``drop_path_rate`` 0.1, the mean token through
  ``ln2``, ``LabelSmoothLoss(0.1)``, Mixup 0.8 / CutMix 1.0; AdamW with
  layer-wise lr decay 0.65 and the config's ``paramwise_cfg``.
- ``finetune_resnet_tiny``: ``benchmarks/classification/imagenet/
  resnet50_8xb32-steplr-90e_in1k.py``: ResNet-18 with 4 stem and base
  channels (BN instead of SyncBN: one process) on 32-pixel images,
  ``GlobalAveragePooling``, ``CrossEntropyLoss``; SGD momentum 0.9, weight
  decay 1e-4. The state after each iteration holds BatchNorm's buffers.

Inputs are seeded ``randn`` images, passed through the model's
``ClsDataPreprocessor`` (``mean`` 0, ``std`` 1, no channel swap: the
identity, so the Rust side hands the same tensors to ``loss``) with
``training=True``, then to ``loss()``; labels are fixed integers.

Randomness, recorded per iteration (``draws.*``, ``draws2.*``):
``batch_augment`` (``RandomBatchAugment``'s ``np.random.choice``, forced to
Mixup in iteration 1 and CutMix in iteration 2 so both are exercised),
``mixup_lambda``/``cutmix_lambda`` (``np.random.beta``),
``mixup_index``/``cutmix_index`` (``torch.randperm``), ``cutmix_cy`` and
``cutmix_cx`` (``np.random.randint``), and every ``DropPath`` call
(``torch.rand``), named ``backbone.layers.{i}.attn`` and
``backbone.layers.{i}.ffn``. The float64 run and the replay reuse them.

Files per case: ``model.pth``, ``keys.json``, ``param_groups.json``,
``config.json``, ``io.safetensors`` (``inputs``/``inputs2``,
``labels``/``labels2``, the draws, the mixed batch and scores of each
iteration (``mixed``, ``scores``, ``mixed2``, ``scores2``), iteration 1's
``feature`` and ``logits``, every loss, gradient and the whole
``state_dict`` after each iteration), ``float32_error2.json``.

It also writes ``finetune_keys.json``: the state_dict inventories of the
full-size ViT-B and ResNet-50 fine-tuning models.

Validation: a second model loaded strictly from ``model.pth`` replays both
iterations bit for bit; the loss is re-derived from the logits and mixed
scores in plain torch.
"""
import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import mmcls  # noqa: E402
import mmselfsup  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmcls.registry import MODELS  # noqa: E402
from mmcls.structures import ClsDataSample  # noqa: E402
from mmcls.utils import register_all_modules as register_mmcls  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

GENERATOR = 'tools/gen_fixtures_finetune.py'
VIT_CFG = 'benchmarks/classification/imagenet/vit-base-p16_ft-8xb128-coslr-100e_in1k.py'
RESNET_CFG = 'benchmarks/classification/imagenet/resnet50_8xb32-steplr-90e_in1k.py'
BATCH = 4
CLASSES = 5
IDENTITY_DP = dict(type='ClsDataPreprocessor', num_classes=CLASSES,
                   mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], to_rgb=False)


def real_config(rel):
    root = os.path.join(os.path.dirname(mmselfsup.__file__), '.mim', 'configs')
    return Config.fromfile(os.path.join(root, rel))


def cfg_vit():
    real = real_config(VIT_CFG).model.to_dict()
    m = copy.deepcopy(real)
    m['backbone'].update(
        arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=16, patch_size=4, drop_path_rate=0.1)
    m['backbone'].pop('init_cfg')
    m['head'].update(num_classes=CLASSES, in_channels=32)
    m['data_preprocessor'] = dict(IDENTITY_DP)
    return m, 16


def cfg_resnet():
    real = real_config(RESNET_CFG).model.to_dict()
    m = copy.deepcopy(real)
    m['backbone'].update(depth=18, stem_channels=4, base_channels=4,
                         norm_cfg=dict(type='BN'))
    m['head'].update(num_classes=CLASSES, in_channels=32)
    m['data_preprocessor'] = dict(IDENTITY_DP)
    return m, 32


CASES = {
    'finetune_vit_tiny': dict(cfg=cfg_vit, real=VIT_CFG, seed=4101),
    'finetune_resnet_tiny': dict(cfg=cfg_resnet, real=RESNET_CFG, seed=4201),
}


def optim_cfg(rel):
    real = real_config(rel).optim_wrapper.to_dict()
    ow = copy.deepcopy(real)
    ow['type'] = 'OptimWrapper'
    ow['optimizer'].pop('_scope_', None)
    ow['optimizer']['lr'] = base.SMALL_LR
    return ow, real


def build(cfg, seed):
    base.seed_all(seed)
    with DefaultScope.overwrite_default_scope('mmcls'):
        model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    model.init_weights()
    model.train()
    return model


class Draws:
    """The draws of one training step, recorded from seeded generators or
    replayed: numpy's ``choice``/``beta``/``randint`` (batch augments),
    ``torch.randperm`` and ``torch.rand`` (DropPath, with its owner)."""

    def __init__(self, model, seed=None, pick=0, replay=None):
        self.seed = seed
        self.pick = pick
        self.replay = replay
        self.rec = {}
        self.order = []
        self.model = model

    def _take(self, name, make):
        if self.replay is not None:
            v = self.replay[name][self.order.count(name)]
        else:
            v = make()
        self.order.append(name)
        self.rec.setdefault(name, []).append(v)
        return v

    def __enter__(self):
        self._np = (np.random.choice, np.random.beta, np.random.randint)
        self._torch = (torch.rand, torch.randperm)
        if self.seed is not None:
            np.random.seed(self.seed)
            self.gen = torch.Generator().manual_seed(self.seed)
        owner = []
        self.hooks = []
        for name, mod in self.model.backbone.named_modules():
            if type(mod).__name__ == 'DropPath':
                short = 'attn' if name.endswith('attn.out_drop') else 'ffn'
                layer = name.split('.')[1]
                key = f'backbone.layers.{layer}.{short}'
                self.hooks.append(mod.register_forward_pre_hook(
                    lambda m, i, key=key: owner.append(key)))
        self.owner = owner
        np_choice, np_beta, np_randint = self._np
        t_rand, t_randperm = self._torch
        prefix = []

        def choice(n, p=None):
            v = self._take('batch_augment', lambda: self.pick)
            prefix[:] = ['mixup' if v == 0 else 'cutmix']
            return v

        def beta(a, b):
            return self._take(f'{prefix[0]}_lambda', lambda: float(np_beta(a, b)))

        def randint(lo, hi, size=None):
            # CutMix's rand_bbox draws the centre row, then the column.
            assert size is None and lo == 0
            n = sum(1 for o in self.order if o in ('cutmix_cy', 'cutmix_cx'))
            name = ('cutmix_cy', 'cutmix_cx')[n % 2]
            return self._take(name, lambda: int(np_randint(lo, hi)))

        def randperm(n, **kw):
            return self._take(f'{prefix[0]}_index',
                              lambda: t_randperm(n, generator=self.gen)).clone()

        def rand(*size, **kw):
            if len(size) == 1 and isinstance(size[0], (tuple, list)):
                size = tuple(size[0])
            dtype = kw.get('dtype') or torch.float32
            key = self.owner[-1]
            v = self._take(key, lambda: t_rand(*size, generator=self.gen))
            return v.clone().to(dtype)

        np.random.choice, np.random.beta, np.random.randint = choice, beta, randint
        torch.rand, torch.randperm = rand, randperm
        return self

    def __exit__(self, *a):
        np.random.choice, np.random.beta, np.random.randint = self._np
        torch.rand, torch.randperm = self._torch
        for h in self.hooks:
            h.remove()

    def named(self):
        """Each draw, its calls concatenated (one call each but DropPath's)."""
        out = {}
        for k, vs in self.rec.items():
            out[k] = torch.cat([torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in vs])
        return out


class Batch:

    def __init__(self, seed, img):
        g = torch.Generator().manual_seed(seed)
        self.img = torch.randn(BATCH, 3, img, img, generator=g)
        self.labels = torch.randint(0, CLASSES, (BATCH, ), generator=g)

    def data(self, dtype):
        samples = [ClsDataSample().set_gt_label(int(l)) for l in self.labels]
        return dict(inputs=self.img.to(dtype), data_samples=samples)

    def call(self, model, dtype=torch.float32, rec=None):
        data = model.data_preprocessor(self.data(dtype), training=True)
        if rec is not None and 'score' in data['data_samples'][0].gt_label:
            rec['mixed'] = data['inputs'].detach().clone()
            rec['scores'] = torch.stack(
                [s.gt_label.score for s in data['data_samples']]).detach().clone()
        return model.loss(data['inputs'], data['data_samples'])


def train_iteration(model, ow, batch, draws, dtype=torch.float32):
    rec = {}
    with draws:
        losses = batch.call(model, dtype, rec)
    parsed, _ = model.parse_losses(losses)
    ow.backward(parsed)
    grads = {}
    for k, p in model.named_parameters():
        assert p.grad is not None, k
        grads[k] = p.grad.detach().clone()
    ow.step()
    ow.zero_grad()
    return dict(losses={k: v.detach().clone() for k, v in losses.items()},
                parsed=parsed.detach().clone(), grads=grads, rec=rec)


def intermediates(model, batch, draws):
    """Iteration 1's feature and logits, re-run on a copy with the same
    draws; the loss re-derived in plain torch."""
    m = copy.deepcopy(model)
    rec = {}
    m.head.register_forward_hook(
        lambda mod, i, o: rec.update(feature=i[0][-1].detach(), logits=o.detach()))
    mixed = {}
    with Draws(m, replay=draws.rec):
        loss = batch.call(m, rec=mixed)['loss']
    logits = rec['logits']
    scores = mixed.get('scores', F.one_hot(batch.labels, CLASSES).float())
    cfg = m.head.loss_module
    if type(cfg).__name__ == 'LabelSmoothLoss':
        eps = cfg.label_smooth_val
        scores = scores * (1 - eps) + eps / CLASSES
    want = (-(scores * F.log_softmax(logits, dim=-1)).sum(-1)).mean()
    assert torch.allclose(want, loss, rtol=1e-5, atol=1e-7), (want, loss)
    return dict(feature=rec['feature'], logits=logits)


def run_case(name, case, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg, img = case['cfg']()
    ocfg, oreal = optim_cfg(case['real'])
    seed = case['seed']
    model = build(cfg, seed)
    meta = base.meta_of(name, seed)
    torch.save({'meta': meta, 'state_dict': model.state_dict()},
               os.path.join(d, 'model.pth'))
    base.write_lines_json(os.path.join(d, 'keys.json'), base.keys_entries(model))
    ow = build_optim_wrapper(model, copy.deepcopy(ocfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    b1, b2 = Batch(seed + 10, img), Batch(seed + 11, img)
    dr1 = Draws(model, seed=seed + 20, pick=0)
    r1 = train_iteration(model, ow, b1, dr1)
    iter1 = base.clone_sd(model)
    dr2 = Draws(model, seed=seed + 21, pick=1)
    r2 = train_iteration(model, ow, b2, dr2)
    iter2 = base.clone_sd(model)

    def fresh(s, dtype=torch.float32):
        m = build(cfg, s).to(dtype)
        ckpt = torch.load(os.path.join(d, 'model.pth'), map_location='cpu', weights_only=True)
        res = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not res.missing_keys and not res.unexpected_keys
        return m

    t = intermediates(fresh(seed + 1), b1, dr1)
    t.update(inputs=b1.img, inputs2=b2.img, labels=b1.labels, labels2=b2.labels)
    for sfx, dr, r in (('', dr1, r1), ('2', dr2, r2)):
        for k, v in dr.named().items():
            t[f'draws{sfx}.{k}'] = v
        if r['rec']:
            t[f'mixed{sfx}'] = r['rec']['mixed']
            t[f'scores{sfx}'] = r['rec']['scores']
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
    ow64 = build_optim_wrapper(m64, copy.deepcopy(ocfg))
    f64 = {}
    for it, b, dr in ((1, b1, dr1), (2, b2, dr2)):
        sfx = '' if it == 1 else '2'
        r = train_iteration(m64, ow64, b, Draws(m64, replay=dr.rec), torch.float64)
        for k, v in r['losses'].items():
            f64[f'loss{sfx}.{k}'] = v.reshape(1)
        f64[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        for k, v in r['grads'].items():
            f64[f'grad{sfx}.{k}'] = v
        for k, v in base.clone_sd(m64).items():
            f64[f'iter{it}.{k}'] = v
    err2 = base.float32_error2(f64, tensors)
    base.write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    # replay from model.pth: bit-identical
    m2 = fresh(seed + 3)
    ow2 = build_optim_wrapper(m2, copy.deepcopy(ocfg))
    assert base.param_groups_of(m2, ow2) == pgroups
    for b, dr, r, state in ((b1, dr1, r1, iter1), (b2, dr2, r2, iter2)):
        q = train_iteration(m2, ow2, b, Draws(m2, replay=dr.rec))
        for k, v in q['losses'].items():
            assert torch.equal(v, r['losses'][k]), k
        for k, v in q['grads'].items():
            assert torch.equal(v, r['grads'][k]), k
        for k, v in base.clone_sd(m2).items():
            assert torch.equal(v, state[k]), k

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    cfg_json['batch_size'] = BATCH
    cfg_json['img_size'] = img
    cfg_json['optim_wrapper'] = base.jsonable(ocfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(oreal)
    cfg_json['fixture'] = dict(
        reference=f'mmcls {mmcls.__version__} / mmselfsup {mmselfsup.__version__} {case["real"]}',
        lr_note='lr 1e-3 constant (no param_scheduler)',
        draws_note='iteration 1 forced to Mixup, iteration 2 to CutMix (batch_augment)')
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                f32err=cfg_json['float32_error'])


# The resolved sections of the full-size configs that the mirrored TOML files must equal.
RUN_KEYS = ('data_preprocessor', 'train_dataloader', 'val_dataloader', 'val_evaluator',
            'optim_wrapper', 'param_scheduler', 'train_cfg', 'default_hooks', 'randomness')


def strip_scope(v):
    """``v`` without MMEngine's ``_scope_`` bookkeeping keys."""
    if isinstance(v, dict):
        return {k: strip_scope(x) for k, x in v.items() if k != '_scope_'}
    if isinstance(v, (list, tuple)):
        return [strip_scope(x) for x in v]
    return v


def full_keys(out_dir):
    """``finetune_keys.json``: the state_dict inventories of the full-size
    benchmark models."""
    entries = {}
    for rel in (VIT_CFG, RESNET_CFG):
        cfg = real_config(rel).model.to_dict()
        cfg['backbone'].pop('init_cfg', None)
        if cfg['backbone'].get('norm_cfg', {}).get('type') == 'SyncBN':
            cfg['backbone']['norm_cfg'] = dict(type='BN')
        with DefaultScope.overwrite_default_scope('mmcls'):
            model = MODELS.build(ConfigDict(cfg))
        pn = dict(model.named_parameters())
        sd = model.state_dict()
        run = real_config(rel).to_dict()
        entries[os.path.basename(rel)[:-3]] = dict(
            config=rel,
            model=base.jsonable(cfg),
            run={k: base.jsonable(strip_scope(run.get(k))) for k in RUN_KEYS},
            num_state_dict_elements=int(sum(v.numel() for v in sd.values())),
            keys=[[k, list(v.shape), str(v.dtype).replace('torch.', ''), k in pn]
                  for k, v in sd.items()])
    path = os.path.join(out_dir, 'finetune_keys.json')
    with open(path, 'w') as f:
        f.write('{\n "note": ' + json.dumps(
            'state_dict of the full-size models of MMSelfSup 1.0.0 '
            'configs/benchmarks/classification (mmcls 1.0.0rc6 '
            'ImageClassifier; SyncBN built as BN, the backbone without its '
            'Pretrained init_cfg): the model dict, the resolved run sections '
            '(`run`, without `_scope_`), and keys as [key, shape, '
            'dtype, is_parameter] in state_dict order') + ',\n')
        names = list(entries)
        for i, name in enumerate(names):
            e = entries[name]
            f.write(f' {json.dumps(name)}: {{\n')
            for k in ('config', 'model', 'run', 'num_state_dict_elements'):
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
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    register_mmcls(init_default_scope=False)
    for name, case in CASES.items():
        r = run_case(name, case, args.out)
        print(f"{name}: loss {r['loss']:.6f} -> {r['loss2']:.6f}, float32 error {r['f32err']}")
    for name, e in full_keys(args.out).items():
        print(f"{name}: {len(e['keys'])} keys, {e['num_state_dict_elements']} elements")
    print(f'done in {time.monotonic() - t0:.1f} s')


if __name__ == '__main__':
    main()
