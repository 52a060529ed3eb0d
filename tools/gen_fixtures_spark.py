#!/usr/bin/env python
"""Generate golden fixtures for SparK from the REAL mmpretrain 1.2.0.

    .venv-reference/bin/python tools/gen_fixtures_spark.py --out tests/fixtures [--no-keys]

Everything is mmpretrain's own code, imported from the pinned package:
``SparK``, ``SparseResNet`` (with its sparse convolutions, pooling and
``SparseSyncBatchNorm2d``, which on one process is a BatchNorm1d over the
active positions), ``SparKLightDecoder``, ``SparKPretrainHead``,
``PixelReconstructionLoss``, mmpretrain's ``Lamb`` and MMEngine's optimiser
wrapper with the real config's ``paramwise_cfg`` and ``clip_grad``.

One case, ``spark_tiny``: ``SparseResNet`` depth 18 with three stages
(8 stem and base channels, outputs 8, 16, 32 at strides 4, 8, 16),
``drop_path_rate`` 0.1; 64-pixel images, ``downsample_raito`` 16 (a 4x4 mask
grid), ``mask_ratio`` 0.6 (6 cells kept, Python's ``round``);
``enc_dec_norm_dim`` 32; ``SparKLightDecoder`` with ``feature_dim`` 32 (4
modules, 32 -> 2 channels); batch 3; seeded ``randn`` images passed to
``loss()`` as the data preprocessor's output. A fourth stage at a 2x2 or 3x3
grid makes this small a network too badly conditioned in float32 for a
parity fixture (its gradients differ from float64's by 0.5-20 %); the
bottleneck's layers are the same sparse layers as the basic block's, and the
full-size key inventory covers ResNet-50. The optimiser is the real
config's ``optim_wrapper`` (Lamb, betas (0.9, 0.95), weight decay 0.04 with
``bias_decay_mult`` and ``flat_decay_mult`` 0 and the mask tokens' 0,
``clip_grad`` 5) as ``OptimWrapper`` with lr 1e-3.

Randomness: every ``torch.rand`` call of the forward pass is recorded and
stored as a draw: the mask noise (``draws.mask_noise``, ``[3, 16]``) and each
block's stochastic depth (``draws.layer{i}.{j}.drop_path``, ``[3]``, in the
order the blocks run), for each iteration (``draws2.*`` the second). The
float64 run and the replay reuse them.

Files: ``model.pth``, ``keys.json``, ``param_groups.json``, ``config.json``
(the model dict, ``optim_wrapper``, ``schedule``: the real
``LinearLR``/``CosineAnnealingLR``/``CosineAnnealingWeightDecay`` schedulers
on a 4-epoch run of 3 iterations per epoch, every group's lr and weight
decay at each iteration), ``io.safetensors``: ``inputs``/``inputs2``, the
draws, iteration 1's ``active`` (the mask, ``[3, 1, 4, 4]``),
``feature.{0..2}`` (the encoder's maps), ``rec`` (the reconstruction),
every loss entry, every gradient and the whole ``state_dict`` after each
iteration (``iter1.*``, ``iter2.*``; BatchNorm running statistics
included); ``float32_error2.json``.

Validation: a second model loaded strictly from ``model.pth`` replays both
iterations bit for bit; the loss is re-derived in plain torch from the
reconstruction; the sparse BatchNorm's statistics are checked against the
active positions.

It also writes ``spark_keys.json``: the state_dict inventory of the
full-size model of ``spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py``.
"""
import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import mmpretrain  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmpretrain.registry import MODELS, PARAM_SCHEDULERS  # noqa: E402

GENERATOR = 'tools/gen_fixtures_spark.py'
REAL_CONFIG = 'spark/spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py'
BATCH = 3
SIZE = 64
SEEDS = dict(init_seed=30, data_seed=31, data2_seed=32, draw_seed=33)


def real_config():
    root = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'configs')
    return Config.fromfile(os.path.join(root, REAL_CONFIG))


def cfg_tiny():
    return dict(
        type='SparK',
        input_size=SIZE,
        downsample_raito=16,
        mask_ratio=0.6,
        enc_dec_norm_cfg=dict(type='SparseSyncBatchNorm2d'),
        enc_dec_norm_dim=32,
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0], to_rgb=False),
        backbone=dict(
            type='SparseResNet', depth=18, stem_channels=8, base_channels=8,
            num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
            out_indices=(0, 1, 2), drop_path_rate=0.1),
        neck=dict(
            type='SparKLightDecoder', feature_dim=32, upsample_ratio=16,
            mid_channels=0, last_act=False),
        head=dict(
            type='SparKPretrainHead',
            loss=dict(type='PixelReconstructionLoss', criterion='L2'),
            patch_size=16))


def optim_real():
    return real_config().optim_wrapper.to_dict()


def optim_cfg():
    ow = copy.deepcopy(optim_real())
    ow['type'] = 'OptimWrapper'
    ow['optimizer']['lr'] = base.SMALL_LR
    return ow


def build(cfg, seed):
    base.seed_all(seed)
    model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    model.init_weights()
    model.train()
    return model


class Draws:
    """torch.rand during a forward pass: recorded from a seeded generator
    (``record``) or replayed (``replay``), each call's shape kept."""

    def __init__(self, seed=None, replay=None):
        self.gen = None if seed is None else torch.Generator().manual_seed(
            seed)
        self.replay = None if replay is None else list(replay)
        self.calls = []

    def __enter__(self):
        self._orig = torch.rand

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


def block_order(model):
    """The names of the blocks whose DropPath draws, in forward order."""
    names = []
    for name, m in model.backbone.named_modules():
        if type(m).__name__ == 'DropPath':
            names.append(name.rsplit('.drop_path', 1)[0])
    return names


def name_draws(model, calls):
    out = {'mask_noise': calls[0]}
    blocks = block_order(model)
    assert len(calls) == 1 + len(blocks), (len(calls), len(blocks))
    for b, v in zip(blocks, calls[1:]):
        out[f'{b}.drop_path'] = v.reshape(-1)
    return out


def train_iteration(model, ow, img, draws):
    with draws:
        losses = model.loss(img, None)
    parsed, _ = model.parse_losses(losses)
    ow.backward(parsed)
    grads = {}
    for k, p in model.named_parameters():
        assert p.grad is not None, k
        grads[k] = p.grad.detach().clone()
    ow.step()
    ow.zero_grad()
    return dict(losses={k: v.detach().clone() for k, v in losses.items()},
                parsed=parsed.detach().clone(), grads=grads)


def intermediates(model, img, calls):
    """Iteration 1's mask, encoder maps and reconstruction (re-run on a
    copy with the same draws; BatchNorm statistics of the copy only)."""
    m = copy.deepcopy(model)
    rec = {}
    m.backbone.register_forward_hook(
        lambda mod, i, o: rec.__setitem__('features', [t.detach() for t in o]))
    m.neck.register_forward_hook(
        lambda mod, i, o: rec.__setitem__('rec', o.detach()))
    with Draws(replay=calls):
        m.loss(img, None)
    from mmpretrain.models.utils.sparse_modules import SparseHelper
    active = SparseHelper._cur_active.detach().clone()
    return active, rec['features'], rec['rec']


def plain_checks(model0, img, active, rec, loss):
    """The head's loss from the reconstruction, in plain torch."""
    p = 16
    B = img.shape[0]
    h = img.shape[2] // p

    def patchify(x):
        return torch.einsum('bchpwq->bhwpqc', x.reshape(B, 3, h, p, h, p)) \
            .reshape(B, h * h, p * p * 3)

    t = patchify(img)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6)**.5
    per = ((patchify(rec) - t)**2).mean(-1)
    m = (~active.reshape(B, -1)).float()
    want = (per * m).sum() / m.sum()
    assert torch.allclose(want, loss, rtol=1e-5), (want, loss)
    assert int(active.sum()) == B * round(16 * 0.4)


def schedule_values(ow_model):
    """The real config's three schedulers, shortened to 4 epochs of 3
    iterations (warm-up 1 epoch, cosine 3), on the tiny model's groups."""
    ow = build_optim_wrapper(ow_model, copy.deepcopy(optim_cfg()))
    scheds = []
    epochs, per_epoch = 4, 3
    real = real_config().param_scheduler
    short = []
    for s in real:
        s = dict(s)
        if s['type'] == 'LinearLR':
            s.update(end=1)
        elif s['type'] == 'CosineAnnealingLR':
            s.update(T_max=3, begin=1, end=4)
        else:
            s.update(T_max=4, end=4)
        short.append(s)
    for s in short:
        s = dict(s)
        s['optimizer'] = ow.optimizer
        s.pop('convert_to_iter_based')
        kind = PARAM_SCHEDULERS.get(s.pop('type'))
        scheds.append(kind.build_iter_from_epoch(
            **s, epoch_length=per_epoch))
    lrs, wds = [], []
    for _ in range(epochs * per_epoch):
        groups = ow.optimizer.param_groups
        lrs.append(sorted({g['lr'] for g in groups}, reverse=True))
        wds.append(sorted({g['weight_decay'] for g in groups}, reverse=True))
        for s in scheds:
            s.step()
    return dict(epoch_length=per_epoch, max_epochs=epochs,
                param_scheduler=base.jsonable(short), lr=lrs,
                weight_decay=wds)


def run_case(out_dir):
    name = 'spark_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = cfg_tiny()
    ocfg = optim_cfg()

    model = build(cfg, SEEDS['init_seed'])
    meta = base.meta_of(name, SEEDS['init_seed'])
    meta['mmpretrain_version'] = str(mmpretrain.__version__)
    torch.save({'meta': meta, 'state_dict': model.state_dict()},
               os.path.join(d, 'model.pth'))
    base.write_lines_json(os.path.join(d, 'keys.json'),
                          base.keys_entries(model))
    schedule = schedule_values(build(cfg, SEEDS['init_seed']))

    ow = build_optim_wrapper(model, copy.deepcopy(ocfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    g1 = torch.Generator().manual_seed(SEEDS['data_seed'])
    g2 = torch.Generator().manual_seed(SEEDS['data2_seed'])
    in1 = torch.randn(BATCH, 3, SIZE, SIZE, generator=g1)
    in2 = torch.randn(BATCH, 3, SIZE, SIZE, generator=g2)

    dr1 = Draws(seed=SEEDS['draw_seed'])
    r1 = train_iteration(model, ow, in1, dr1)
    iter1 = base.clone_sd(model)
    dr2 = Draws(seed=SEEDS['draw_seed'] + 1)
    r2 = train_iteration(model, ow, in2, dr2)
    iter2 = base.clone_sd(model)

    def fresh(seed, dtype=torch.float32):
        m = build(cfg, seed).to(dtype)
        ckpt = torch.load(os.path.join(d, 'model.pth'), map_location='cpu',
                          weights_only=True)
        res = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not res.missing_keys and not res.unexpected_keys
        return m

    model0 = fresh(SEEDS['init_seed'] + 1)
    active, feats, rec = intermediates(model0, in1, dr1.calls)
    plain_checks(model0, in1, active, rec, r1['losses']['loss'])

    t = {'inputs': in1, 'inputs2': in2, 'active': active.float(), 'rec': rec}
    for i, f in enumerate(feats):
        t[f'feature.{i}'] = f
    for sfx, dr in (('', dr1), ('2', dr2)):
        for k, v in name_draws(model, dr.calls).items():
            t[f'draws{sfx}.{k}'] = v.reshape(-1)
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
    m64 = fresh(SEEDS['init_seed'] + 2, torch.float64)
    ow64 = build_optim_wrapper(m64, copy.deepcopy(ocfg))
    f64 = {}
    for it, img, dr in ((1, in1, dr1), (2, in2, dr2)):
        sfx = '' if it == 1 else '2'
        r = train_iteration(m64, ow64, img.double(),
                            Draws(replay=[c.double() for c in dr.calls]))
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
    m2 = fresh(SEEDS['init_seed'] + 3)
    ow2 = build_optim_wrapper(m2, copy.deepcopy(ocfg))
    assert base.param_groups_of(m2, ow2) == pgroups
    for img, dr, r, state in ((in1, dr1, r1, iter1), (in2, dr2, r2, iter2)):
        q = train_iteration(m2, ow2, img, Draws(replay=dr.calls))
        for k, v in q['losses'].items():
            assert torch.equal(v, r['losses'][k]), k
        for k, v in q['grads'].items():
            assert torch.equal(v, r['grads'][k]), k
        for k, v in m2.state_dict().items():
            assert torch.equal(v, state[k]), k

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = base.jsonable(ocfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(optim_real())
    cfg_json['seeds'] = SEEDS
    cfg_json['schedule'] = schedule
    cfg_json['fixture'] = dict(
        reference=f'mmpretrain {mmpretrain.__version__} {REAL_CONFIG}',
        lr_note='lr 1e-3 constant (no param_scheduler); Lamb, clip_grad 5')
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                tensors=tensors, f32err=cfg_json['float32_error'], dir=d)


def full_keys(out_dir):
    cfg = real_config().model.to_dict()
    cfg.pop('data_preprocessor', None)
    # on the CPU: mmpretrain's ResNet reads its drop-path rates with .item()
    model = MODELS.build(ConfigDict(cfg))
    pn = dict(model.named_parameters())
    sd = model.state_dict()
    entry = dict(
        config=REAL_CONFIG,
        num_state_dict_elements=int(sum(v.numel() for v in sd.values())),
        num_trainable_params=int(
            sum(p.numel() for p in pn.values() if p.requires_grad)),
        keys=[[k, list(v.shape), str(v.dtype).replace('torch.', ''),
               k in pn, bool(k in pn and pn[k].requires_grad)]
              for k, v in sd.items()])
    path = os.path.join(out_dir, 'spark_keys.json')
    name = os.path.basename(REAL_CONFIG)[:-3]
    with open(path, 'w') as f:
        f.write('{\n "note": ' + json.dumps(
            'state_dict of the full-size model of mmpretrain 1.2.0 '
            'configs/' + REAL_CONFIG + ': keys as [key, shape, '
            'dtype, is_parameter, requires_grad] in state_dict order') + ',\n')
        f.write(f' {json.dumps(name)}: {{\n')
        for k in ('config', 'num_state_dict_elements', 'num_trainable_params'):
            f.write(f'  {json.dumps(k)}: {json.dumps(entry[k])},\n')
        f.write('  "keys": [\n' + ',\n'.join(
            '   ' + json.dumps(e, separators=(',', ':'))
            for e in entry['keys']) + '\n  ]\n }\n')
        f.write('}\n')
    json.load(open(path))
    return {name: entry}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--no-keys', action='store_true')
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    r = run_case(args.out)
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
