#!/usr/bin/env python
"""Generate golden fixtures for DINO from the REAL mmpretrain 1.2.0.

    .venv-reference/bin/python tools/gen_fixtures_dino.py --out tests/fixtures [--no-keys]

mmpretrain ships DINO as a project (``projects/dino`` in its repository),
which is not part of its wheel. Everything DINO is built from is mmpretrain's
own code, imported from the pinned package: the backbone
(``mmpretrain.VisionTransformer``, with ``resize_pos_embed`` for the local
crops), ``BaseSelfSupervisor``, ``CosineEMA``, MMEngine's optimiser wrapper and
``torch.nn.utils.weight_norm``. The three small project classes (``DINO``,
``DINONeck``, ``DINOHead``, about 150 lines at v1.2.0) are written out below
from their published source, with the same module names, buffers and keys,
and registered under the same type names. Two deliberate differences, both
documented in ``crates/selfsup-algorithms/src/dino.rs``:

- the project never calls ``teacher.update_parameters``; here the teacher
  is a copy of the student before the first step (MMEngine's first
  ``update_parameters`` call, ``teacher.steps`` 0 -> 1) and moves after
  every optimiser step with MMSelfSup's cosine EMA, ``t <- m t + (1-m) s``,
  ``m = 1 - (1 - base_momentum) (cos(pi steps / max_iters) + 1) / 2``: the
  real ``CosineEMA`` with ``momentum = 1 - base_momentum``,
  ``end_momentum = 0`` (mmpretrain's ``CosineEMA`` takes the online weight);
- the teacher's weight-normalised last layer is frozen like the rest of the
  teacher (the project leaves its ``weight_v`` requiring a gradient that
  never comes; the values and keys are the same), and the EMA's list of
  parameters to average is taken again after ``weight_norm`` (MMEngine
  0.10.7 lists them when ``CosineEMA`` is built, so the project's teacher
  could not be updated: ``KeyError: '1.last_layer.weight'``).

The head also returns two log-only entries, ``teacher_entropy`` (mean
entropy of the teacher's centred, sharpened softmax) and ``center_norm``
(the norm of the centre the loss used), which ``parse_losses`` does not sum.

One case, ``dino_tiny``: a ViT (2 layers, width 16, 2 heads, patch 4,
``img_size`` 16), ``DINONeck`` (16 -> 32 -> 32 -> 8 -> 24), ``DINOHead``
(24 outputs, 4 crops, student temperature 0.1, centre momentum 0.9), teacher
temperature 0.04 (the config's), ``base_momentum`` 0.9 and ``max_iters`` 10
(MessageHub, read by ``CosineEMA``). Each iteration sees two global crops of
16 pixels and two local crops of 8 (the position embedding resized from 4x4
to 2x2), batch 2, seeded ``randn`` views passed to ``loss()`` as the data
preprocessor's output. The optimiser is the real config's ``optim_wrapper``
(AdamW, betas (0.9, 0.95), weight decay 0.05 except ``ln``, ``bias``,
``pos_embed``, ``mask_token``, ``cls_token``) as ``OptimWrapper`` with lr 1e-3.

Files: ``model.pth`` (``{'meta', 'state_dict'}``, teacher copied,
``teacher.steps`` 1), ``keys.json``, ``param_groups.json``, ``config.json``
(the model dict, ``optim_wrapper``, ``teacher_temp``, ``max_iters``),
``io.safetensors``: ``inputs.{0..3}`` and ``inputs2.{0..3}``, iteration 1's
``pos_embed_resized`` (the local crops' embedding), ``teacher_out``,
``student_out``, every loss entry, every gradient and the whole
``state_dict`` after each iteration and its teacher update (``iter1.*``,
``iter2.*``); ``float32_error2.json`` (the same two iterations in float64;
mmpretrain's ``resize_pos_embed`` interpolates in float32 there too).

Validation: a second model built with another seed and loaded strictly from
``model.pth`` replays both iterations bit for bit; the loss, the centre and
the teacher update are re-derived in plain torch.

It also writes ``dino_keys.json``: the state_dict inventory of the
full-size model of ``dino_vit-base-p16_8xb64-amp-coslr-100e_in1k.py``
(ViT-B/16, ``DINONeck`` 768 -> 2048 -> 2048 -> 256 -> 65536, 10 crops).
"""
import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import mmpretrain  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.dist import all_reduce, get_world_size  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.model import BaseModule  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmpretrain.models import CosineEMA  # noqa: E402
from mmpretrain.models.selfsup import BaseSelfSupervisor  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from torch import nn  # noqa: E402

GENERATOR = 'tools/gen_fixtures_dino.py'
REAL_CONFIG = 'projects/dino/config/dino_vit-base-p16_8xb64-amp-coslr-100e_in1k.py'
MAX_ITERS = 10
BATCH = 2
TEACHER_TEMP = 0.04
SEEDS = dict(init_seed=20, data_seed=21, data2_seed=22)


# ------------------------------------------------------------ projects/dino
@MODELS.register_module(name='DINONeck', force=True)
class DINONeck(BaseModule):
    """projects/dino/models/neck/dino_neck.py at v1.2.0."""

    def __init__(self, in_channels, hidden_channels, out_channels,
                 bottleneck_channels):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden_channels), nn.GELU(),
            nn.Linear(hidden_channels, hidden_channels), nn.GELU(),
            nn.Linear(hidden_channels, bottleneck_channels))
        self.last_layer = nn.Linear(
            bottleneck_channels, out_channels, bias=False)

    def forward(self, x):
        x = self.mlp(x[0])
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


@MODELS.register_module(name='DINOHead', force=True)
class DINOHead(BaseModule):
    """projects/dino/models/head/dino_head.py at v1.2.0, plus the two
    log-only entries."""

    def __init__(self, out_channels, num_crops, student_temp,
                 center_momentum):
        super().__init__()
        self.student_temp = student_temp
        self.teacher_temp = 0
        self.center_momentum = center_momentum
        self.num_crops = num_crops
        self.register_buffer('center', torch.zeros(1, out_channels))

    def forward(self, student_output, teacher_output):
        current_teacher_output = teacher_output
        center_norm = self.center.norm().reshape(1)
        student_output = student_output / self.student_temp
        student_output = student_output.chunk(self.num_crops, dim=0)
        logits = (teacher_output - self.center) / self.teacher_temp
        t = F.softmax(logits, dim=-1)
        entropy = -(t * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        teacher_output = t.detach().chunk(2, dim=0)
        total_loss = 0
        n_loss_terms = 0
        for i in range(len(teacher_output)):
            for j in range(len(student_output)):
                if i == j:
                    continue
                total_loss += (-teacher_output[i] *
                               student_output[j].log_softmax(dim=-1)).sum(
                                   dim=-1).mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        self.update_center(current_teacher_output)
        return total_loss, entropy.detach(), center_norm

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        all_reduce(batch_center)
        batch_center = batch_center / (len(teacher_output) * get_world_size())
        self.center = self.center * self.center_momentum + batch_center * (
            1 - self.center_momentum)


@MODELS.register_module(name='DINO', force=True)
class DINO(BaseSelfSupervisor):
    """projects/dino/models/algorithm/dino.py at v1.2.0 (teacher: see the
    module docstring)."""

    def __init__(self, backbone, neck, head, pretrained=None,
                 base_momentum=0.99, data_preprocessor=None, init_cfg=None):
        super().__init__(
            backbone=backbone, neck=neck, head=head, pretrained=pretrained,
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.teacher = CosineEMA(
            nn.Sequential(self.backbone, self.neck),
            momentum=1 - base_momentum, end_momentum=0.)
        self.neck.last_layer = nn.utils.weight_norm(self.neck.last_layer)
        self.neck.last_layer.weight_g.data.fill_(1)
        self.neck.last_layer.weight_g.requires_grad = False
        last = nn.utils.weight_norm(self.teacher.module[1].last_layer)
        self.teacher.module[1].last_layer = last
        last.weight_g.data.fill_(1)
        last.weight_g.requires_grad = False
        last.weight_v.requires_grad = False
        # MMEngine 0.10.7 lists the parameters to average when the EMA is
        # built, before weight_norm replaced `last_layer.weight`: list again.
        self.teacher.avg_parameters = dict(
            self.teacher.module.named_parameters())

    def loss(self, inputs, data_samples):
        global_crops = torch.cat(inputs[:2])
        local_crops = torch.cat(inputs[2:])
        teacher_output = self.teacher(global_crops)
        student_output_global = self.neck(self.backbone(global_crops))
        student_output_local = self.neck(self.backbone(local_crops))
        student_output = torch.cat(
            (student_output_global, student_output_local))
        loss, entropy, center_norm = self.head(student_output, teacher_output)
        self.last = dict(teacher_out=teacher_output.detach().clone(),
                         student_out=student_output.detach().clone())
        return dict(loss=loss, teacher_entropy=entropy,
                    center_norm=center_norm)

    @torch.no_grad()
    def update_teacher(self):
        self.teacher.update_parameters(nn.Sequential(self.backbone, self.neck))


# ------------------------------------------------------------------ configs
def cfg_tiny():
    return dict(
        type='DINO',
        base_momentum=0.9,
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0], bgr_to_rgb=False),
        backbone=dict(
            type='mmpretrain.VisionTransformer',
            arch=dict(embed_dims=16, num_layers=2, num_heads=2,
                      feedforward_channels=32),
            img_size=16, patch_size=4),
        neck=dict(type='DINONeck', in_channels=16, out_channels=24,
                  hidden_channels=32, bottleneck_channels=8),
        head=dict(type='DINOHead', out_channels=24, num_crops=4,
                  student_temp=0.1, center_momentum=0.9))


def cfg_full():
    # the model dict of REAL_CONFIG
    return dict(
        type='DINO',
        data_preprocessor=dict(
            mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True),
        backbone=dict(
            type='mmpretrain.VisionTransformer', arch='b', patch_size=16),
        neck=dict(type='DINONeck', in_channels=768, out_channels=65536,
                  hidden_channels=2048, bottleneck_channels=256),
        head=dict(type='DINOHead', out_channels=65536, num_crops=10,
                  student_temp=0.1, center_momentum=0.9))


# The real config's optim_wrapper (AmpOptimWrapper -> OptimWrapper, lr 1e-3).
OPTIM_REAL = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0024, betas=(0.9, 0.95),
                   weight_decay=0.05),
    paramwise_cfg=dict(custom_keys=dict(
        ln=dict(decay_mult=0.0), bias=dict(decay_mult=0.0),
        pos_embed=dict(decay_mult=0.0), mask_token=dict(decay_mult=0.0),
        cls_token=dict(decay_mult=0.0))),
    loss_scale='dynamic')


def optim_cfg():
    ow = copy.deepcopy(OPTIM_REAL)
    ow['type'] = 'OptimWrapper'
    ow.pop('loss_scale')
    ow['optimizer']['lr'] = base.SMALL_LR
    return ow


def build(cfg, seed):
    base.seed_all(seed)
    model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    model.init_weights()
    model.train()
    model.head.teacher_temp = TEACHER_TEMP
    return model


def views(seed):
    g = torch.Generator().manual_seed(seed)
    glob = [torch.randn(BATCH, 3, 16, 16, generator=g) for _ in range(2)]
    loc = [torch.randn(BATCH, 3, 8, 8, generator=g) for _ in range(2)]
    return glob + loc


def train_iteration(model, ow, inputs):
    losses = model.loss(inputs, None)
    parsed, _ = model.parse_losses(losses)
    ow.backward(parsed)
    grads = {}
    for k, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, k
            grads[k] = p.grad.detach().clone()
        else:
            assert p.grad is None, k
    ow.step()
    ow.zero_grad()
    model.update_teacher()
    return dict(losses={k: v.detach().clone() for k, v in losses.items()},
                parsed=parsed.detach().clone(), grads=grads)


def plain_checks(model0, inputs, r1, iter1, tensors):
    """Loss, centre and teacher update of iteration 1 in plain torch."""
    t_out, s_out = tensors['teacher_out'], tensors['student_out']
    center0 = model0.head.center
    t = F.softmax((t_out - center0) / TEACHER_TEMP, -1).chunk(2)
    s = F.log_softmax(s_out / 0.1, -1).chunk(4)
    terms = [-(t[i] * s[j]).sum(-1).mean() for i in range(2)
             for j in range(4) if i != j]
    loss = sum(terms) / len(terms)
    assert torch.allclose(loss, r1['losses']['loss'], rtol=1e-6), loss
    center = center0 * 0.9 + t_out.mean(0, keepdim=True) * 0.1
    assert torch.allclose(center, iter1['head.center'], rtol=1e-6)
    m = 1 - (1 - 0.9) * (torch.cos(torch.tensor(torch.pi / MAX_ITERS)) + 1) / 2
    for k in ('backbone.pos_embed', 'neck.mlp.0.weight',
              'neck.last_layer.weight_v'):
        old = model0.state_dict()['teacher.module.' +
                                  ('0.' if k.startswith('backbone') else '1.')
                                  + k.split('.', 1)[1]]
        want = old * m + iter1[k] * (1 - m)
        tk = 'teacher.module.' + ('0.' if k.startswith('backbone') else '1.') \
            + k.split('.', 1)[1]
        assert torch.allclose(iter1[tk], want, rtol=1e-5, atol=1e-7), tk
    assert int(iter1['teacher.steps']) == 2


def run_case(out_dir):
    name = 'dino_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = cfg_tiny()
    ocfg = optim_cfg()
    MessageHub.get_current_instance().update_info('max_iters', MAX_ITERS)

    model = build(cfg, SEEDS['init_seed'])
    model.update_teacher()  # the copy: teacher.steps 0 -> 1
    init_sd = base.clone_sd(model)
    assert int(init_sd['teacher.steps']) == 1
    for k, v in init_sd.items():
        if k.startswith('teacher.module.'):
            i, rest = k[len('teacher.module.'):].split('.', 1)
            src = ('backbone.' if i == '0' else 'neck.') + rest
            assert torch.equal(v, init_sd[src]), k
    meta = base.meta_of(name, SEEDS['init_seed'])
    meta['mmpretrain_version'] = str(mmpretrain.__version__)
    torch.save({'meta': meta, 'state_dict': model.state_dict()},
               os.path.join(d, 'model.pth'))
    base.write_lines_json(os.path.join(d, 'keys.json'),
                          base.keys_entries(model))

    ow = build_optim_wrapper(model, copy.deepcopy(ocfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    in1, in2 = views(SEEDS['data_seed']), views(SEEDS['data2_seed'])
    pos = mmpretrain.models.utils.resize_pos_embed(
        model.backbone.pos_embed.detach(), (4, 4), (2, 2), 'bicubic', 1)
    r1 = train_iteration(model, ow, in1)
    last1 = model.last
    iter1 = base.clone_sd(model)
    r2 = train_iteration(model, ow, in2)
    iter2 = base.clone_sd(model)

    t = {}
    for k in range(4):
        t[f'inputs.{k}'] = in1[k]
        t[f'inputs2.{k}'] = in2[k]
    t['pos_embed_resized'] = pos
    t.update(last1)
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

    def fresh(seed, dtype=torch.float32):
        m = build(cfg, seed).to(dtype)
        ckpt = torch.load(os.path.join(d, 'model.pth'), map_location='cpu',
                          weights_only=True)
        res = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not res.missing_keys and not res.unexpected_keys
        return m

    model0 = fresh(SEEDS['init_seed'] + 1)
    plain_checks(model0, in1, r1, iter1, tensors)

    # float64: the same two iterations
    m64 = fresh(SEEDS['init_seed'] + 2, torch.float64)
    ow64 = build_optim_wrapper(m64, copy.deepcopy(ocfg))
    f64 = {}
    for it, inputs in ((1, in1), (2, in2)):
        sfx = '' if it == 1 else '2'
        r = train_iteration(m64, ow64, [v.double() for v in inputs])
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
    for inputs, r, state in ((in1, r1, iter1), (in2, r2, iter2)):
        q = train_iteration(m2, ow2, inputs)
        for k, v in q['losses'].items():
            assert torch.equal(v, r['losses'][k]), k
        for k, v in q['grads'].items():
            assert torch.equal(v, r['grads'][k]), k
        for k, v in m2.state_dict().items():
            assert torch.equal(v, state[k]), k

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = base.jsonable(ocfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(OPTIM_REAL)
    cfg_json['seeds'] = SEEDS
    cfg_json['teacher_temp'] = TEACHER_TEMP
    cfg_json['max_iters'] = MAX_ITERS
    cfg_json['fixture'] = dict(
        reference=f'mmpretrain {mmpretrain.__version__} {REAL_CONFIG} '
        '(project classes written out in ' + GENERATOR + ')',
        lr_note='lr 1e-3 constant (no param_scheduler); AdamW')
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                tensors=tensors, f32err=cfg_json['float32_error'], dir=d)


def full_keys(out_dir):
    with torch.device('meta'):
        model = MODELS.build(ConfigDict(cfg_full()))
    pn = dict(model.named_parameters())
    sd = model.state_dict()
    res = {'dino_vit-base-p16_8xb64-amp-coslr-100e_in1k': dict(
        config='dino/dino_vit-base-p16_8xb64-amp-coslr-100e_in1k.py',
        num_state_dict_elements=int(sum(v.numel() for v in sd.values())),
        num_trainable_params=int(
            sum(p.numel() for p in pn.values() if p.requires_grad)),
        keys=[[k, list(v.shape), str(v.dtype).replace('torch.', ''),
               k in pn, bool(k in pn and pn[k].requires_grad)]
              for k, v in sd.items()])}
    path = os.path.join(out_dir, 'dino_keys.json')
    import json
    with open(path, 'w') as f:
        f.write('{\n "note": ' + json.dumps(
            'state_dict of the full-size model of mmpretrain 1.2.0 ' +
            REAL_CONFIG + ' (meta device): keys as [key, shape, dtype, '
            'is_parameter, requires_grad] in state_dict order') + ',\n')
        for n, r in res.items():
            f.write(f' {json.dumps(n)}: {{\n')
            for k in ('config', 'num_state_dict_elements',
                      'num_trainable_params'):
                f.write(f'  {json.dumps(k)}: {json.dumps(r[k])},\n')
            f.write('  "keys": [\n' + ',\n'.join(
                '   ' + json.dumps(e, separators=(',', ':'))
                for e in r['keys']) + '\n  ]\n }\n')
        f.write('}\n')
    json.load(open(path))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--cases', nargs='*', default=None)
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
        keys = full_keys(args.out)
        for n, v in keys.items():
            print(f'{n}: {len(v["keys"])} keys, '
                  f'{v["num_state_dict_elements"]} elements')
    print(f'{time.monotonic() - t0:.1f} s; all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
