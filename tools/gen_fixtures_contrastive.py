#!/usr/bin/env python
"""Generate golden fixtures for the contrastive / siamese family from the REAL
MMSelfSup 1.0.0 reference (SimCLR, MoCo v2, BYOL, SimSiam, Barlow Twins,
DenseCL, SwAV with and without the feature queue, MoCo v3 on a ViT).

What it does
------------
For each tiny case in ``CASES`` it:

1. builds the algorithm through the mmselfsup registry from a plain dict
   (``register_all_modules()`` + ``MODELS.build``). Every field is the one of
   ``configs/selfsup/_base_/models/<algo>.py`` except the sizes (tiny ResNet
   widths via ``stem_channels``/``base_channels``, tiny MLPs, tiny ViT, tiny
   queues) and the norm layers (``BN`` / ``BN1d`` instead of ``SyncBN``,
   except in ``simclr_tiny``, which keeps ``SyncBN`` exactly as the config:
   without an initialised process group ``torch.nn.SyncBatchNorm`` runs plain
   ``F.batch_norm``). The dict is saved as ``config.json``;
2. seeds torch (and numpy/random) and calls ``model.init_weights()`` as
   mmengine's Runner does, then **perturbs every BatchNorm of the online
   network** (backbone, neck, head/predictor; never the momentum/target
   copies ``encoder_k`` / ``target_net`` / ``momentum_encoder``) with seeded
   values: weight ~ U(0.5, 1.5), bias ~ N(0, 0.1), running_mean ~ N(0, 0.1),
   running_var ~ U(0.5, 1.5) (affine-less BNs get only the running stats).
   This also overwrites the zeros that ``zero_init_residual`` put into the
   last BN of every residual block. The weights are saved as ``model.pth``
   (``{'meta': ..., 'state_dict': ...}``, the layout of a real MMSelfSup
   checkpoint) together with ``keys.json``;
3. records ``model.extract_feat(inputs)`` (backbone on view 0) in train mode
   and in eval mode, each on a deep copy of the initial model;
4. runs one training step: ``torch.manual_seed(step_seed)`` (the RNG that
   ``batch_shuffle_ddp``'s ``torch.randperm`` draws from), then
   ``model(inputs, data_samples, mode='loss')`` -> ``parse_losses`` ->
   ``backward`` -> one ``torch.optim.SGD(lr=0.1, momentum=0.9,
   weight_decay=1e-4)`` step over the parameters with requires_grad (the
   optimiser is built before the forward, as the Runner does) -> the
   FOLLOWING momentum update, i.e. what the next ``loss()`` call does first
   (``encoder_k`` / ``target_net`` / ``momentum_encoder``
   ``.update_parameters(nn.Sequential(model.backbone, model.neck))``, exactly
   the module the algorithms pass), applied to a DEEP COPY. The data
   preprocessor is skipped: the views are seeded ``torch.randn`` tensors
   passed as ``inputs=[v0, v1, ...]``.
   ``MessageHub.get_current_instance().update_info('max_iters', MAX_ITERS)``
   is set first (CosineEMA reads it). The state before that update is the
   real end of iteration 1 (``iter1.*``);
4b. runs a SECOND iteration from ``iter1`` on a second seeded batch
   (``inputs2.*``, ``data2_seed``) with the same SGD object (its momentum
   buffers carry over) after ``torch.manual_seed(step2_seed)``, and records
   ``loss2.*``, ``grad2.*``, ``iter2.*`` (end of iteration 2) and
   ``after_update2.*`` (plus the following momentum update, on a copy);
5. writes ``io.safetensors``: inputs, features, every loss, every gradient,
   the whole state_dict after the update (``after_update.*``), the random
   draws (``draw.*``, ``draw2.*``), small intermediates (``debug.*``) and the
   two-iteration tensors above;
6. validates each case against two independent replays from ``model.pth``
   (fresh models built with a *different* init seed, loaded strictly with
   ``weights_only=True``), and aborts on any mismatch:
   - replay A runs mmengine's real ``model.train_step(data, optim_wrapper)``
     twice (an ``OptimWrapper`` around SGD, built by ``build_optim_wrapper``)
     with **no patching and no hooks**. Its data preprocessor is built with
     mean 0, std 1 and no BGR->RGB swap, so it passes the float views
     through bit-exactly (x - 0 = x, x / 1 = x). After each iteration the
     loss and every state_dict entry must be bit-equal to ``iter1``/``iter2``,
     and the momentum update on a copy to ``after_update``/``after_update2``;
   - replay B reruns loss -> backward by hand; every gradient, every loss
     entry and the train/eval features must be bit-equal; then SGD and
     iteration 2 by hand: ``loss2``, ``grad2`` and ``iter2`` bit-equal;
   - for the momentum algorithms, ``check_momentum_buffers`` asserts when
     the BatchNorm buffers are copied into the momentum encoder (inside
     ``loss()``, after the online forward) by replaying the momentum
     forward from ``iter1``/``iter2`` alone, plus the documented counters.
   Some intermediates are also re-derived in plain torch (SimCLR pos/neg,
   MoCo logits and queue update, DenseCL matching, Barlow Twins
   correlation, SwAV Sinkhorn and queue shift);
7. reruns the recorded step in float64 from the same state and stores how
   far the float32 fixture is from it in ``config.json`` ->
   ``float32_error`` (tolerance guidance for other implementations);
8. reruns BOTH iterations in float64 from the same initial state, with the
   float32 procedure step by step (one SGD for both iterations, the same
   seeds before each ``loss()``, the inputs cast to float64, the following
   momentum update on a copy, the SwAV queue carried over), and writes
   ``float32_error2.json``: ``[rel, abs, scale]`` for every float tensor of
   ``loss.*``, ``grad.*``, ``iter1.*``, ``after_update.*``, ``loss2.*``,
   ``grad2.*``, ``iter2.*``, ``after_update2.*`` (iteration 2 is badly
   conditioned: per-tensor tolerances for it must come from this file).

Single-process, CPU-only runs: what was patched
-----------------------------------------------
**Nothing.** The distributed helpers the algorithms call are mmengine's
``mmengine.dist`` functions, which already degrade to the single-process
identity forms when no process group is initialised (world size 1):
``all_gather(x) -> [x]``, ``broadcast`` and ``all_reduce`` are no-ops and
``get_rank() == 0``. Hence ``GatherLayer`` (SimCLR) and ``concat_all_gather``
(MoCo, DenseCL, MoCo v3) are identities, ``batch_shuffle_ddp`` returns
``x[idx_shuffle]`` with ``idx_shuffle = torch.randperm(B)`` from the global
RNG and ``batch_unshuffle_ddp`` returns ``x[argsort(idx_shuffle)]``;
``distributed_sinkhorn`` runs with ``world_size=1`` (SwAVLoss reads
``dist.is_initialized()``). No code path of these cases calls ``.cuda()``
(only ``SwAVHook`` does, and the hook is not used: ``swav_tiny_queue`` sets
``model.head.loss.queue`` / ``use_queue`` itself, as the hook would).
For *recording only* (never in the validation replays) the generator wraps
``torch.randperm`` to capture the permutation (calling the original) and
wraps ``mmselfsup.models.losses.swav_loss.distributed_sinkhorn`` to capture
its input and output; forward hooks capture intermediates.

How to run
----------
    .venv-reference/bin/python tools/gen_fixtures_contrastive.py --out tests/fixtures [--list]

The reference venv (MMSelfSup 1.0.0, mmcls 1.0.0rc6, mmengine 0.10.7,
mmcv-lite 2.0.1, torch 2.9.0, CPU; pinned in ``tools/reference/``) is created
by ``tools/reference/setup.sh`` (default ``.venv-reference``); it is NOT
committed. ``tools/fixtures.py --check`` reruns every generator and compares
the results with ``tests/fixtures/SHA256SUMS``.
Everything is float32 on CPU, single thread, with fixed seeds; re-running
reproduces the files. See tools/README.md for the meaning, dtype and layout
of every tensor.

It also writes ``contrastive_keys.json``: the state_dict keys and shapes of
the full-size real configs (built on the ``meta`` device, no weights).
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
import torch.nn as nn  # noqa: E402

import mmcls  # noqa: E402
import mmengine  # noqa: E402
import mmselfsup  # noqa: E402
import mmselfsup.models.losses.swav_loss as swav_loss_mod  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub, MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmselfsup.registry import MODELS  # noqa: E402
from mmselfsup.structures import SelfSupDataSample  # noqa: E402
from mmselfsup.utils import register_all_modules  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

GENERATOR = 'tools/gen_fixtures_contrastive.py'
MMSELFSUP_DIR = os.path.dirname(mmselfsup.__file__)
CONFIG_DIR = os.path.join(MMSELFSUP_DIR, '.mim', 'configs', 'selfsup')

MAX_ITERS = 10
BATCH = 4
OPTIMIZER = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
# data_preprocessor of every real config (not applied: the views are fed as
# already-normalised float tensors)
DATA_PREPROCESSOR = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)
MOMENTUM_ATTR = {
    'MoCo': 'encoder_k',
    'DenseCL': 'encoder_k',
    'BYOL': 'target_net',
    'MoCoV3': 'momentum_encoder',
}


# ---------------------------------------------------------------- configs
def resnet(depth, base, zero_init_residual, norm='BN', strides=None):
    d = dict(
        type='ResNet',
        depth=depth,
        in_channels=3,
        stem_channels=base,
        base_channels=base,
        out_indices=[4],
        norm_cfg=dict(type=norm))
    if strides is not None:
        d['strides'] = list(strides)
    if zero_init_residual:
        d['zero_init_residual'] = True
    return d


CE = dict(type='mmcls.CrossEntropyLoss')
# tiny widths: ResNet-18 stages 2/4/8/16 channels, ResNet-50 stages
# 8/16/32/64 (bottleneck mid 2/4/8/16); stem_channels = base_channels as
# in the real nets (so ResNet-18 layer1.0 has no downsample)
R18_BASE = 2
R50_BASE = 2


def cfg_simclr():
    # _base_/models/simclr.py; SyncBN kept (backbone cfg and neck default)
    return dict(
        type='SimCLR',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(18, R18_BASE, True, norm='SyncBN'),
        neck=dict(
            type='NonLinearNeck',
            in_channels=16,
            hid_channels=16,
            out_channels=8,
            num_layers=2,
            with_avg_pool=True,
            norm_cfg=dict(type='SyncBN')),
        head=dict(type='ContrastiveHead', loss=CE, temperature=0.1))


def cfg_mocov2():
    # _base_/models/mocov2.py. strides (1,1,1,2) as in densecl_tiny: a 4x4
    # final map (non-trivial avg-pool; with 1x1 maps every layer4 BN sees 4
    # values and float32 loses ~1e-4 of the loss against float64)
    return dict(
        type='MoCo',
        queue_len=16,
        feat_dim=16,
        momentum=0.999,
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(50, R50_BASE, False, strides=(1, 1, 1, 2)),
        neck=dict(
            type='MoCoV2Neck',
            in_channels=64,
            hid_channels=32,
            out_channels=16,
            with_avg_pool=True),
        head=dict(type='ContrastiveHead', loss=CE, temperature=0.2))


def cfg_byol():
    # _base_/models/byol.py, plus with_last_bias=True (as the brief asked;
    # the real config leaves it at its default, False)
    return dict(
        type='BYOL',
        base_momentum=0.99,
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(18, R18_BASE, False),
        neck=dict(
            type='NonLinearNeck',
            in_channels=16,
            hid_channels=32,
            out_channels=8,
            num_layers=2,
            with_bias=True,
            with_last_bn=False,
            with_last_bias=True,
            with_avg_pool=True,
            norm_cfg=dict(type='BN1d')),
        head=dict(
            type='LatentPredictHead',
            predictor=dict(
                type='NonLinearNeck',
                in_channels=8,
                hid_channels=32,
                out_channels=8,
                num_layers=2,
                with_bias=True,
                with_last_bn=False,
                with_last_bias=True,
                with_avg_pool=False,
                norm_cfg=dict(type='BN1d')),
            loss=dict(type='CosineSimilarityLoss')))


def cfg_simsiam():
    # _base_/models/simsiam.py
    return dict(
        type='SimSiam',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(18, R18_BASE, True),
        neck=dict(
            type='NonLinearNeck',
            in_channels=16,
            hid_channels=16,
            out_channels=16,
            num_layers=3,
            with_last_bn_affine=False,
            with_avg_pool=True,
            norm_cfg=dict(type='BN1d')),
        head=dict(
            type='LatentPredictHead',
            loss=dict(type='CosineSimilarityLoss'),
            predictor=dict(
                type='NonLinearNeck',
                in_channels=16,
                hid_channels=4,
                out_channels=16,
                with_avg_pool=False,
                with_last_bn=False,
                with_last_bias=True,
                norm_cfg=dict(type='BN1d'))))


def cfg_barlowtwins():
    # _base_/models/barlowtwins.py (Kaiming-uniform Linear init kept).
    # with_bias=False is the NonLinearNeck default; written out here.
    return dict(
        type='BarlowTwins',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(18, R18_BASE, True),
        neck=dict(
            type='NonLinearNeck',
            in_channels=16,
            hid_channels=16,
            out_channels=16,
            num_layers=3,
            with_bias=False,
            with_last_bn=False,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=True,
            norm_cfg=dict(type='BN1d'),
            init_cfg=dict(
                type='Kaiming', distribution='uniform', layer=['Linear'])),
        head=dict(
            type='LatentCrossCorrelationHead',
            in_channels=16,
            loss=dict(type='CrossCorrelationLoss', lambd=0.0051)))


def cfg_densecl():
    # _base_/models/densecl.py. strides (1,1,1,2) instead of (1,2,2,2) so
    # that a 32x32 view gives a 4x4 final map (S^2 = 16 dense positions).
    return dict(
        type='DenseCL',
        queue_len=16,
        feat_dim=16,
        momentum=0.999,
        loss_lambda=0.5,
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(50, R50_BASE, False, strides=(1, 1, 1, 2)),
        neck=dict(
            type='DenseCLNeck',
            in_channels=64,
            hid_channels=32,
            out_channels=16,
            num_grid=None),
        head=dict(type='ContrastiveHead', loss=CE, temperature=0.2))


def cfg_swav():
    # _base_/models/swav.py with num_crops [2, 2] and 10 prototypes
    return dict(
        type='SwAV',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(18, R18_BASE, True),
        neck=dict(
            type='SwAVNeck',
            in_channels=16,
            hid_channels=16,
            out_channels=8,
            with_avg_pool=True,
            norm_cfg=dict(type='BN1d')),
        head=dict(
            type='SwAVHead',
            loss=dict(
                type='SwAVLoss',
                feat_dim=8,
                epsilon=0.05,
                temperature=0.1,
                num_crops=[2, 2],
                crops_for_assign=[0, 1],
                num_prototypes=10)))


def cfg_mocov3_vit():
    # _base_/models/mocov3_vit-small-p16.py with a tiny arch
    t = 0.2
    return dict(
        type='MoCoV3',
        base_momentum=0.99,
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=dict(
            type='MoCoV3ViT',
            arch=dict(
                embed_dims=32,
                num_layers=2,
                num_heads=4,
                feedforward_channels=64),
            img_size=16,
            patch_size=4,
            stop_grad_conv1=True),
        neck=dict(
            type='NonLinearNeck',
            in_channels=32,
            hid_channels=32,
            out_channels=16,
            num_layers=3,
            with_bias=False,
            with_last_bn=True,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=False,
            vit_backbone=True,
            norm_cfg=dict(type='BN1d')),
        head=dict(
            type='MoCoV3Head',
            predictor=dict(
                type='NonLinearNeck',
                in_channels=16,
                hid_channels=32,
                out_channels=16,
                num_layers=2,
                with_bias=False,
                with_last_bn=True,
                with_last_bn_affine=False,
                with_last_bias=False,
                with_avg_pool=False,
                norm_cfg=dict(type='BN1d')),
            loss=dict(type='mmcls.CrossEntropyLoss', loss_weight=2 * t),
            temperature=t))


CASES = {
    'simclr_tiny': dict(cfg=cfg_simclr, views=[32, 32], seed=101),
    'mocov2_tiny':
    dict(cfg=cfg_mocov2, views=[32, 32], seed=212, data2_offset=75),
    'byol_tiny': dict(cfg=cfg_byol, views=[32, 32], seed=303),
    'simsiam_tiny': dict(cfg=cfg_simsiam, views=[32, 32], seed=404),
    'barlowtwins_tiny': dict(cfg=cfg_barlowtwins, views=[32, 32], seed=505),
    'densecl_tiny':
    dict(cfg=cfg_densecl, views=[32, 32], seed=616, data2_offset=15),
    'swav_tiny': dict(cfg=cfg_swav, views=[32, 32, 16, 16], seed=707),
    'swav_tiny_queue':
    dict(cfg=cfg_swav, views=[32, 32, 16, 16], seed=808, queue_length=8),
    'mocov3_vit_tiny': dict(cfg=cfg_mocov3_vit, views=[16, 16], seed=909),
}


def seeds_of(case):
    s = case['seed']
    d = dict(
        init_seed=s,
        bn_perturb_seed=s + 1,
        data_seed=s + 2,
        step_seed=s + 3)
    if 'queue_length' in case:
        d['queue_seed'] = s + 4
    # second iteration (iter2.*, loss2.*, after_update2.*): a second batch
    # and the global-RNG seed set before its loss(). data2_seed is the first
    # of s+5, s+15, s+25, ... whose iteration-2 ReLU inputs all stay
    # KINK_MARGIN away from 0 (s+5 failed for mocov2 up to s+65 and for
    # densecl at s+5)
    d['data2_seed'] = s + case.get('data2_offset', 5)
    d['step2_seed'] = s + 6
    return d


# ---------------------------------------------------------------- helpers
def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def momentum_prefix(cfg):
    a = MOMENTUM_ATTR.get(cfg['type'])
    return None if a is None else a + '.'


@torch.no_grad()
def perturb_bn(model, seed, skip_prefix):
    """Seeded BN affine/running-stat values in the online network only."""
    g = torch.Generator().manual_seed(seed)
    names = []
    for name, m in model.named_modules():  # shared modules visited once
        if skip_prefix and name.startswith(skip_prefix):
            continue
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        n = m.num_features
        if m.affine:
            m.weight.copy_(torch.empty(n).uniform_(0.5, 1.5, generator=g))
            m.bias.copy_(torch.empty(n).normal_(0.0, 0.1, generator=g))
        m.running_mean.copy_(torch.empty(n).normal_(0.0, 0.1, generator=g))
        m.running_var.copy_(torch.empty(n).uniform_(0.5, 1.5, generator=g))
        names.append(name)
    return names


def build_model(cfg, init_seed):
    seed_all(init_seed)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    model.train()
    return model


# Smallest |pre-ReLU| value allowed in the online backbone's forward passes.
# A ReLU input closer to 0 than float32 noise can flip sign between two
# correct implementations (different summation orders) and change the
# gradient of a whole channel: a discontinuity, not a tolerance question.
# Cases are seeded so that every ReLU input is farther than this from 0
# (mocov2 moved from seed 202 to 212 and densecl from 606 to 616 for this:
# 202 had a ReLU input at 8.6e-6 in layer4.1 that flipped).
KINK_MARGIN = 1e-5


def check_relu_margin(model, inputs, name):
    """Fails when a ReLU input of the online backbone is within KINK_MARGIN of 0."""
    found = []

    def hook(mod_name):
        def f(mod, inp):
            v = inp[0].detach().abs()
            nz = v[v > 0]
            if nz.numel():
                found.append((mod_name, float(nz.min())))
        return f

    handles = [
        m.register_forward_pre_hook(hook(n))
        for n, m in model.backbone.named_modules()
        if isinstance(m, torch.nn.ReLU)
    ]
    try:
        # The real loss forward (on a copy: it updates queues and EMAs), so
        # the batch statistics are those of the fixture's step.
        with torch.no_grad():
            model([x.clone() for x in inputs], data_samples(), mode='loss')
    finally:
        for h in handles:
            h.remove()
    worst = min(found, key=lambda f: f[1]) if found else ('', 1.0)
    if worst[1] < KINK_MARGIN:
        raise SystemExit(
            f'{name}: ReLU input {worst[1]:.2e} at backbone.{worst[0]} is within '
            f'{KINK_MARGIN} of the kink; pick another seed for this case')


def make_inputs(views, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, 3, s, s, generator=g) for s in views]


def make_queue(case, feat_dim, seed):
    """SwAV feature queue as SwAVHook would hold it, but filled (seeded,
    L2-normalised rows) so that ``use_queue`` matters."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, case['queue_length'], feat_dim, generator=g)
    return nn.functional.normalize(q, dim=2)


def set_queue(model, queue):
    model.head.loss.queue = queue.clone()
    model.head.loss.use_queue = True


def data_samples():
    return [SelfSupDataSample() for _ in range(BATCH)]


def clone_sd(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def momentum_update(model, cfg):
    attr = MOMENTUM_ATTR.get(cfg['type'])
    if attr is None:
        return
    getattr(model, attr).update_parameters(
        nn.Sequential(model.backbone, model.neck))


def state_after_following_update(model, cfg):
    """The state_dict after the FOLLOWING momentum update (what the next
    ``loss()`` does first), computed on a deep copy so that ``model`` stays
    at the end of its iteration. Without a momentum encoder it is the state
    itself."""
    if MOMENTUM_ATTR.get(cfg['type']) is None:
        return clone_sd(model)
    m = copy.deepcopy(model)
    momentum_update(m, cfg)
    return clone_sd(m)


# online forward calls / momentum-encoder forward calls per loss()
MOMENTUM_CALLS = {'MoCo': (1, 1), 'DenseCL': (1, 1), 'BYOL': (2, 2),
                  'MoCoV3': (2, 2)}


def momentum_views(cfg, views, draws, it):
    """The batches the momentum encoder sees in ``loss()`` of iteration
    ``it`` (1-based): MoCo/DenseCL the shuffled view 1 (``batch_shuffle_ddp``),
    BYOL/MoCoV3 view 0 then view 1."""
    if cfg['type'] in ('MoCo', 'DenseCL'):
        key = 'draw.idx_shuffle' if it == 1 else 'draw2.idx_shuffle'
        return [views[1][draws[key]]]
    return [views[0], views[1]]


@torch.no_grad()
def check_momentum_buffers(name, cfg, model, init_sd, iters, afters,
                           inputs_per_iter, draws_per_iter):
    """Asserts the buffer semantics documented in tools/README.md.

    ``update_parameters`` (update_buffers=False) copies every buffer of the
    online backbone+neck into the momentum encoder when ``loss()`` calls it,
    i.e. AFTER the online forward of that iteration; the momentum encoder's
    own train-mode forward then moves its running stats again. Checked by
    replaying the momentum forward(s) from ``iter<t>`` alone: momentum
    parameters of iter<t> + online buffers of iter<t> (the online forward of
    iteration t is their last change; SGD does not touch buffers)."""
    attr = MOMENTUM_ATTR.get(cfg['type'])
    if attr is None:
        return
    n_on, n_mom = MOMENTUM_CALLS[cfg['type']]
    P = attr + '.module.'
    online = nn.Sequential(model.backbone, model.neck)
    roots = {'0': 'backbone.', '1': 'neck.'}

    def on(k):  # momentum-module key '0.x' / '1.x' -> online key
        return roots[k[0]] + k[2:]

    buf_keys = [k for k, _ in online.named_buffers()]
    par_keys = [k for k, _ in online.named_parameters()]
    nbt = [k for k in buf_keys if k.endswith('num_batches_tracked')]
    stats = [k for k in buf_keys if k.endswith(('running_mean',
                                                'running_var'))]
    assert nbt, (name, 'no BN buffers in the momentum encoder')
    prev = init_sd
    for t, (S, A) in enumerate(zip(iters, afters), start=1):
        assert int(S[attr + '.steps']) == t, (name, t)
        assert int(A[attr + '.steps']) == t + 1, (name, t)
        for k in nbt:
            assert int(S[on(k)]) == n_on * t, (name, t, k, int(S[on(k)]))
            assert int(S[P + k]) == n_on * t + n_mom, (name, t, k)
            assert int(A[P + k]) == n_on * t, (name, t, k)
        for k in buf_keys:
            # the following update copies the online buffers...
            assert torch.equal(A[P + k], A[on(k)]), (name, t, k)
        for k in stats:
            # ... while at the end of the iteration they differ
            assert not torch.equal(S[P + k], S[on(k)]), (name, t, k)
        for k in S:
            if not k.startswith(attr + '.'):
                assert torch.equal(A[k], S[k]), (name, t, k)  # online: same
        # replay the momentum forward(s) of iteration t from iter<t>
        views = momentum_views(cfg, inputs_per_iter[t - 1],
                               {**draws_per_iter[0], **draws_per_iter[1]}, t)
        for src, must_match in ((S, True), (prev, False)):
            mod = copy.deepcopy(getattr(model, attr).module).train()
            sd = {}
            for k in mod.state_dict():
                sd[k] = (src[on(k)] if k in buf_keys else S[P + k]).clone()
            mod.load_state_dict(sd, strict=True)
            for v in views:
                mod(v.clone())
            got = mod.state_dict()
            same = all(torch.equal(got[k], S[P + k]) for k in buf_keys)
            assert same == must_match, (
                name, t, 'momentum buffers: copied from the online net of '
                + ('this' if src is S else 'the previous') + ' state')
        prev = S
    # the in-loss update of iteration 2 moves the parameters exactly as the
    # "following update" after iteration 1 (after_update) did
    for k in par_keys:
        assert torch.equal(iters[1][P + k], afters[0][P + k]), (name, k)


def make_sgd(model):
    return torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=OPTIMIZER['lr'],
        momentum=OPTIMIZER['momentum'],
        weight_decay=OPTIMIZER['weight_decay'])


def flatten_feats(feats, prefix):
    """extract_feat output: tuple over out_indices; ViT items are
    [patch (B,D,h,w), cls (B,D)]."""
    out = {}
    for i, f in enumerate(feats):
        if isinstance(f, (list, tuple)):
            assert len(f) == 2
            out[f'{prefix}.{i}.patch'] = f[0].detach().clone()
            out[f'{prefix}.{i}.cls'] = f[1].detach().clone()
        else:
            out[f'{prefix}.{i}'] = f.detach().clone()
    return out


def features(model, inputs):
    m = copy.deepcopy(model)
    m.train()
    with torch.no_grad():
        ft = flatten_feats(m.extract_feat([x.clone() for x in inputs]),
                           'feat')
    m = copy.deepcopy(model)
    m.eval()
    with torch.no_grad():
        fe = flatten_feats(m.extract_feat([x.clone() for x in inputs]),
                           'feat_eval')
    return ft, fe


def deep_clone(t):
    if isinstance(t, (list, tuple)):
        return type(t)(deep_clone(x) for x in t)
    return t.detach().clone()


class Recorder:
    """Forward hooks + wrappers used only in the recorded run."""

    def __init__(self):
        self.store = {}
        self.handles = []
        self.restore = []

    def add(self, name, t):
        self.store.setdefault(name, []).append(deep_clone(t))

    def out_hook(self, module, name, pick=lambda o: o[0]):
        self.handles.append(
            module.register_forward_hook(
                lambda m, i, o: self.add(name, pick(o))))

    def in_hook(self, module, name, pick):
        def f(m, args):
            for k, v in pick(args).items():
                self.add(f'{name}{k}', v)

        self.handles.append(module.register_forward_pre_hook(f))

    def wrap_randperm(self):
        orig = torch.randperm

        def fake(*a, **k):
            r = orig(*a, **k)
            self.add('randperm', r)
            return r

        torch.randperm = fake
        self.restore.append(lambda: setattr(torch, 'randperm', orig))

    def wrap_sinkhorn(self):
        orig = swav_loss_mod.distributed_sinkhorn

        def fake(out, *a, **k):
            self.add('sinkhorn_in', out)
            r = orig(out, *a, **k)
            self.add('sinkhorn_out', r)
            return r

        swav_loss_mod.distributed_sinkhorn = fake
        self.restore.append(
            lambda: setattr(swav_loss_mod, 'distributed_sinkhorn', orig))

    def close(self):
        for h in self.handles:
            h.remove()
        for r in self.restore:
            r()


def install_recorders(model, cfg, rec):
    t = cfg['type']
    rec.out_hook(model.backbone, 'backbone', pick=lambda o: o)
    rec.out_hook(model.neck, 'neck', pick=lambda o: o)
    if t in ('MoCo', 'DenseCL', 'SimCLR'):
        rec.in_hook(model.head, 'head_in',
                    lambda a: {'.pos': a[0], '.neg': a[1]})
    if t in ('MoCo', 'DenseCL'):
        rec.wrap_randperm()
        rec.out_hook(model.encoder_k.module[0], 'k_backbone',
                     pick=lambda o: o)
        rec.out_hook(model.encoder_k.module[1], 'k_neck', pick=lambda o: o)
    if t == 'BYOL':
        rec.out_hook(model.target_net, 'target', pick=lambda o: o[0])
    if t == 'MoCoV3':
        rec.out_hook(model.momentum_encoder, 'target', pick=lambda o: o[0])
        rec.in_hook(model.head.loss, 'ce_in', lambda a: {'.logits': a[0]})
    if t in ('BYOL', 'SimSiam', 'MoCoV3'):
        rec.out_hook(model.head.predictor, 'pred', pick=lambda o: o[0])
        rec.out_hook(model.head, 'head_out', pick=lambda o: o)
    if t == 'BarlowTwins':
        rec.in_hook(model.head.loss, 'cc_in', lambda a: {'.c': a[0]})
        rec.out_hook(model.head.bn, 'bn_out', pick=lambda o: o)
    if t == 'SwAV':
        rec.wrap_sinkhorn()
        rec.out_hook(model.head.loss.prototypes, 'scores', pick=lambda o: o)


def neck_list(rec, key):
    """NonLinearNeck/MoCoV2Neck return [z]; keep z."""
    return [o[0] for o in rec.store[key]]


def debug_tensors(cfg, rec, model, inputs, after_loss_protos):
    """Small intermediates, in readable names."""
    t = cfg['type']
    s = rec.store
    d = {}
    if t == 'SimCLR':
        z = neck_list(rec, 'neck')[0]
        d['debug.z'] = z  # (2B, D) neck output, rows interleaved v0,v1
        d['debug.pos'] = s['head_in.pos'][0]  # (2B, 1)
        d['debug.neg'] = s['head_in.neg'][0]  # (2B, 2B-2)
    elif t == 'MoCo':
        d['debug.q'] = neck_list(rec, 'neck')[0]  # (B, C) un-normalised
        # encoder_k output in SHUFFLED order, un-normalised
        d['debug.k_shuffled'] = neck_list(rec, 'k_neck')[0]
        d['debug.l_pos'] = s['head_in.pos'][0]
        d['debug.l_neg'] = s['head_in.neg'][0]
    elif t == 'DenseCL':
        q, q_grid, q2 = s['neck'][0]
        k, k_grid, k2 = s['k_neck'][0]
        d['debug.q'] = q
        d['debug.q_grid'] = q_grid
        d['debug.q2'] = q2
        d['debug.k_shuffled'] = k
        d['debug.k_grid_shuffled'] = k_grid
        d['debug.k2_shuffled'] = k2
        d['debug.l_pos'] = s['head_in.pos'][0]
        d['debug.l_neg'] = s['head_in.neg'][0]
        d['debug.l_pos_dense'] = s['head_in.pos'][1]
        d['debug.l_neg_dense'] = s['head_in.neg'][1]
        # matching indices, re-derived from the captured backbone maps
        perm = s['randperm'][0]
        unsh = torch.argsort(perm)
        q_b = s['backbone'][0][0]
        k_b = s['k_backbone'][0][0][unsh]
        q_b = nn.functional.normalize(q_b.flatten(2), dim=1)
        k_b = nn.functional.normalize(k_b.flatten(2), dim=1)
        ind = torch.matmul(q_b.permute(0, 2, 1), k_b).max(dim=2)[1]
        d['debug.densecl_sim_ind'] = ind.float()  # (B, S^2)
        # check: gathering with these indices reproduces l_pos_dense
        qg = nn.functional.normalize(q_grid, dim=1)
        kg = nn.functional.normalize(k_grid, dim=1)[unsh]
        kg = torch.gather(kg, 2, ind.unsqueeze(1).expand(-1, kg.size(1), -1))
        lpd = (qg * kg).sum(1).view(-1, 1)
        assert torch.equal(lpd, s['head_in.pos'][1]), 'densecl matching'
    elif t in ('BYOL', 'SimSiam', 'MoCoV3'):
        z = neck_list(rec, 'neck')
        d['debug.z.0'] = z[0]  # online neck on view 0
        d['debug.z.1'] = z[1]  # online neck on view 1
        p = s['pred']
        d['debug.pred.0'] = p[0]  # predictor on z.0 (first head call)
        d['debug.pred.1'] = p[1]  # predictor on z.1 (second head call)
        ho = s['head_out']
        d['debug.head_loss.0'] = ho[0].reshape(1)
        d['debug.head_loss.1'] = ho[1].reshape(1)
        if t in ('BYOL', 'MoCoV3'):
            d['debug.target.0'] = s['target'][0]  # momentum net on view 0
            d['debug.target.1'] = s['target'][1]  # momentum net on view 1
        if t == 'MoCoV3':
            d['debug.logits.0'] = s['ce_in.logits'][0]
            d['debug.logits.1'] = s['ce_in.logits'][1]
    elif t == 'BarlowTwins':
        z = neck_list(rec, 'neck')
        d['debug.z.0'] = z[0]
        d['debug.z.1'] = z[1]
        d['debug.bn_z.0'] = s['bn_out'][0]
        d['debug.bn_z.1'] = s['bn_out'][1]
        d['debug.c'] = s['cc_in.c'][0]  # cloned before the in-place loss
    elif t == 'SwAV':
        d['debug.z'] = neck_list(rec, 'neck')[0]  # (4B, D) L2-normalised
        d['debug.scores'] = s['scores'][0]  # (4B, K) z @ W_norm^T
        for i in range(len(s['sinkhorn_in'])):
            d[f'debug.sinkhorn_in.{i}'] = s['sinkhorn_in'][i]
            d[f'debug.q.{i}'] = s['sinkhorn_out'][i][-BATCH:]
        d['debug.prototypes_normalized'] = after_loss_protos
    return d


def plain_checks(cfg, dbg, losses, case):
    """Re-derive a few things in plain torch (tolerant comparisons)."""
    t = cfg['type']
    if t == 'SimCLR':
        z = dbg['debug.z']
        z = z / (z.norm(dim=1, keepdim=True) + 1e-10)
        s = z @ z.t()
        n2 = s.shape[0]
        s = s[~torch.eye(n2, dtype=torch.bool)].view(n2, n2 - 1)
        pos = s[torch.arange(n2), 2 * (torch.arange(n2) // 2)]
        assert torch.allclose(pos[:, None], dbg['debug.pos'], atol=1e-6)
        logits = torch.cat([dbg['debug.pos'], dbg['debug.neg']], 1) / 0.1
        ref = nn.functional.cross_entropy(logits,
                                          torch.zeros(n2, dtype=torch.long))
        assert torch.allclose(ref, losses['loss'], rtol=1e-6)
    elif t == 'BarlowTwins':
        c = dbg['debug.c']
        on = ((torch.diagonal(c) - 1)**2).sum()
        off = (c**2).sum() - (torch.diagonal(c)**2).sum()
        ref = on + 0.0051 * off
        assert torch.allclose(ref, losses['loss'], rtol=1e-5), (ref, losses)
        ref_c = dbg['debug.bn_z.0'].t() @ dbg['debug.bn_z.1'] / BATCH
        assert torch.allclose(ref_c, c, atol=1e-6)
    elif t == 'SwAV':
        n = len([k for k in dbg if k.startswith('debug.q.')])
        for i in range(n):
            out = dbg[f'debug.sinkhorn_in.{i}']
            Q = torch.exp(out / 0.05).t()
            Q = Q / Q.sum()
            K, Bq = Q.shape
            for _ in range(3):
                Q = Q / Q.sum(1, keepdim=True) / K
                Q = Q / Q.sum(0, keepdim=True) / Bq
            Q = (Q * Bq).t()[-BATCH:]
            assert torch.allclose(Q, dbg[f'debug.q.{i}'], atol=1e-6)
            assert out.shape[0] == BATCH + case.get('queue_length', 0)


def to_f32(v):
    return v.detach().to(torch.float32).contiguous()


def float32_error(model0, cfg, inputs, queue, seeds, loss32, grads32,
                  feats32):
    """Rerun the recorded forward/backward in float64 from the same state
    and report how far float32 is from it (tolerance guidance only)."""
    m = copy.deepcopy(model0).double()
    if queue is not None:
        set_queue(m, queue.double())
    ft, fe = features(m, [x.double() for x in inputs])
    torch.manual_seed(seeds['step_seed'])
    losses = m([x.double() for x in inputs], data_samples(), mode='loss')
    p, _ = m.parse_losses(losses)
    p.backward()

    def rel(a, b):
        return float((a.double() - b).abs().max() /
                     b.abs().max().clamp_min(1e-30))

    zero, worst = [], []
    abs_err, scale = 0.0, 0.0
    for k, q in m.named_parameters(remove_duplicate=False):
        if q.grad is None:
            continue
        g64 = q.grad
        abs_err = max(abs_err, float((grads32[k].double() - g64).abs().max()))
        scale = max(scale, float(g64.abs().max()))
        if float(g64.abs().max()) < 1e-10:
            zero.append(k)  # analytically zero (e.g. a bias before a BN)
            continue
        worst.append((rel(grads32[k], g64), k))
    worst.sort(reverse=True)
    feats64 = {**ft, **fe}
    return dict(
        note='float32 fixture vs the same step in float64: relative error '
        '= max|f32-f64| / max|f64| per tensor',
        loss_rel=float(abs(loss32.double() - p.detach()) / abs(p.detach())),
        feat_rel=max(rel(feats32[k], v) for k, v in feats64.items()),
        grad_rel_max=worst[0][0],
        grad_rel_worst=[[k, r] for r, k in worst[:5]],
        grad_rel_median=worst[len(worst) // 2][0],
        grad_abs_err_max=abs_err,
        grad_abs_max=scale,
        analytically_zero_grads=zero)


# prefixes of float32_error2.json, in the order of the two iterations
ERROR2_PREFIXES = ('loss', 'grad', 'iter1', 'after_update', 'loss2', 'grad2',
                   'iter2', 'after_update2')


def sig4(x):
    """A float rounded to 4 significant digits (deterministic, short JSON)."""
    return float(f'{x:.4g}')


def float32_error2(model0, cfg, inputs, inputs2, queue, seeds, tensors32):
    """Rerun BOTH recorded iterations in float64 from the same initial state,
    with exactly the float32 procedure (SGD built before the first forward
    and kept for iteration 2, ``torch.manual_seed(step_seed / step2_seed)``
    before each ``loss()``, the SwAV queue set before iteration 1 and carried
    over, the following momentum update on a deep copy for
    ``after_update*``), and measure every float tensor of the two
    iterations in the fixture (``tensors32``, already float32) against it.

    Returns ``{prefix: {key: [rel, abs, scale]}}`` with rel = abs / max(scale,
    1e-30), abs = max|f32 - f64|, scale = max|f64|, each rounded to 4
    significant digits. Integer entries (``num_batches_tracked``, ``steps``,
    ``queue_ptr``) are left out. Nothing here touches the float32 model."""
    m = copy.deepcopy(model0).double()
    if queue is not None:
        set_queue(m, queue.double())
    opt = make_sgd(m)
    f64 = {}
    for it, (xs, seed) in enumerate(
            ((inputs, seeds['step_seed']), (inputs2, seeds['step2_seed'])),
            start=1):
        sfx = '' if it == 1 else '2'
        torch.manual_seed(seed)
        losses = m([x.double() for x in xs], data_samples(), mode='loss')
        parsed, _ = m.parse_losses(losses)
        for k, v in losses.items():
            f64[f'loss{sfx}.{k}'] = v.detach().clone().reshape(1)
        parsed.backward()
        for k, p in m.named_parameters(remove_duplicate=False):
            if p.grad is not None:
                f64[f'grad{sfx}.{k}'] = p.grad.detach().clone()
        opt.step()
        opt.zero_grad()
        for k, v in clone_sd(m).items():
            f64[f'iter{it}.{k}'] = v
        for k, v in state_after_following_update(m, cfg).items():
            f64[f'after_update{sfx}.{k}'] = v
    res = {p: {} for p in ERROR2_PREFIXES}
    for key, v64 in f64.items():
        if not v64.dtype.is_floating_point:
            continue
        pre, k = key.split('.', 1)
        v32 = tensors32[key]
        assert v32.shape == v64.shape, (key, v32.shape, v64.shape)
        err = float((v32.double() - v64).abs().max())
        scale = float(v64.abs().max())
        assert np.isfinite(err) and np.isfinite(scale), (key, err, scale)
        res[pre][k] = [sig4(err / max(scale, 1e-30)), sig4(err), sig4(scale)]
    for pre in ERROR2_PREFIXES:
        # every float tensor of the fixture's two iterations is covered
        want = {
            k.split('.', 1)[1]
            for k in tensors32 if k.split('.', 1)[0] == pre
            and f64[k].dtype.is_floating_point
        }
        assert set(res[pre]) == want, (pre, set(res[pre]) ^ want)
    out = dict(
        note='float32 fixture (io.safetensors) vs the same two iterations '
        'run in float64 from model.pth (same seeds, inputs cast to float64, '
        'same SGD, same momentum updates and SwAV queue): per tensor '
        '[rel, abs, scale] with abs = max|f32 - f64|, scale = max|f64|, '
        'rel = abs / max(scale, 1e-30); 4 significant digits; integer '
        'entries left out')
    for pre in ERROR2_PREFIXES:
        out[pre] = dict(sorted(res[pre].items()))
    return out


def write_float32_error2(path, err):
    """JSON with one tensor per line (small, diffable, deterministic)."""
    lines = ['{', f' "note": {json.dumps(err["note"])},']
    for i, pre in enumerate(ERROR2_PREFIXES):
        items = [f'  {json.dumps(k)}: {json.dumps(v)}'
                 for k, v in err[pre].items()]
        end = ',' if i + 1 < len(ERROR2_PREFIXES) else ''
        lines.append(f' {json.dumps(pre)}: {{')
        lines.append(',\n'.join(items))
        lines.append(' }' + end)
    lines.append('}')
    text = '\n'.join(lines) + '\n'
    assert json.loads(text) == err
    with open(path, 'w') as f:
        f.write(text)


def error2_summary(err, mprefix):
    """Largest rel per group, for the console and tools/README.md."""
    def worst(pre, pick):
        # analytically zero tensors (max|f64| < 1e-10) have a meaningless rel
        items = [(v[0], k) for k, v in err[pre].items()
                 if pick(k) and v[2] >= 1e-10]
        return max(items) if items else (0.0, '-')

    def mom_buf(k):
        return bool(mprefix) and k.startswith(mprefix) and k.endswith(
            ('running_mean', 'running_var'))

    def online_param(k):
        return not (mprefix and k.startswith(mprefix)) and not k.endswith(
            ('running_mean', 'running_var')) and not k.startswith('queue')

    return dict(
        iter1_mom_buf=worst('iter1', mom_buf),
        iter2_mom_buf=worst('iter2', mom_buf),
        iter2_online_param=worst('iter2', online_param),
        grad2=worst('grad2', lambda k: True),
        iter2_all=worst('iter2', lambda k: True))


# ---------------------------------------------------------------- a case
def run_case(name, case, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = case['cfg']()
    seeds = seeds_of(case)
    mprefix = momentum_prefix(cfg)
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', MAX_ITERS)

    model = build_model(cfg, seeds['init_seed'])
    bn_names = perturb_bn(model, seeds['bn_perturb_seed'], mprefix)
    init_sd = clone_sd(model)
    pnames = dict(model.named_parameters(remove_duplicate=False))

    meta = dict(
        mmselfsup_version=str(mmselfsup.__version__),
        mmcls_version=str(mmcls.__version__),
        mmengine_version=str(mmengine.__version__),
        torch_version=str(torch.__version__),
        epoch=0,
        iter=0,
        seed=seeds['init_seed'],
        fixture_case=name,
        generator=GENERATOR)
    torch.save({'meta': meta, 'state_dict': model.state_dict()},
               os.path.join(d, 'model.pth'))
    keys = []
    first_of = {}  # storage -> first key (SwAV: neck.bn is projection_neck.1)
    for k, v in model.state_dict().items():
        ptr = (v.data_ptr(), tuple(v.shape))
        alias = first_of.setdefault(ptr, k)
        keys.append(
            dict(
                key=k,
                shape=list(v.shape),
                dtype=str(v.dtype).replace('torch.', ''),
                is_parameter=k in pnames,
                requires_grad=bool(k in pnames and pnames[k].requires_grad),
                alias_of=None if alias == k else alias))
    with open(os.path.join(d, 'keys.json'), 'w') as f:
        # one entry per line
        f.write('[\n' + ',\n'.join(
            json.dumps(e, separators=(',', ':')) for e in keys) + '\n]\n')

    inputs = make_inputs(case['views'], seeds['data_seed'])
    check_relu_margin(copy.deepcopy(model).train(), inputs, name)
    queue = None
    if 'queue_length' in case:
        queue = make_queue(case, cfg['head']['loss']['feat_dim'],
                           seeds['queue_seed'])

    # ---- features on deep copies of the initial model
    feat_train, feat_eval = features(model, inputs)
    model0 = copy.deepcopy(model)

    # ---- the recorded step
    if queue is not None:
        set_queue(model, queue)
    opt = make_sgd(model)
    rec = Recorder()
    install_recorders(model, cfg, rec)
    try:
        torch.manual_seed(seeds['step_seed'])
        losses = model([x.clone() for x in inputs], data_samples(),
                       mode='loss')
    finally:
        rec.close()
    after_loss_protos = None
    if cfg['type'] == 'SwAV':
        after_loss_protos = model.head.loss.prototypes.weight.detach().clone()
    parsed, _ = model.parse_losses(losses)
    losses = {k: v.detach().clone() for k, v in losses.items()}
    dbg = debug_tensors(cfg, rec, model, inputs, after_loss_protos)
    plain_checks(cfg, dbg, losses, case)
    parsed.backward()
    grads = {}
    for k, p in model.named_parameters(remove_duplicate=False):
        if p.grad is not None:
            assert p.requires_grad
            grads[k] = p.grad.detach().clone()
        elif p.requires_grad:
            raise AssertionError(f'{name}: trainable {k} got no grad')
    opt.step()
    opt.zero_grad()
    # end of iteration 1 (what MMSelfSup holds when train_step returns)
    iter1 = clone_sd(model)
    # ... and after the following momentum update, on a copy: the model
    # goes on to iteration 2 from iter1, whose loss() does that update itself
    after = state_after_following_update(model, cfg)
    queue_after = None
    if queue is not None:
        queue_after = model.head.loss.queue.detach().clone()
        # the queue is read (for the scores) before it is shifted; then the
        # B newest embeddings of the assignment crop go to the front
        z = dbg['debug.z']
        w = dbg['debug.prototypes_normalized']
        for i, crop in enumerate(cfg['head']['loss']['crops_for_assign']):
            exp = torch.cat([z[crop * BATCH:(crop + 1) * BATCH],
                             queue[i, :-BATCH]])
            assert torch.equal(queue_after[i], exp), 'swav queue shift'
            assert torch.allclose(dbg[f'debug.sinkhorn_in.{i}'][:-BATCH],
                                  queue[i] @ w.t(), atol=1e-6)

    draws = {}
    if 'randperm' in rec.store:
        assert len(rec.store['randperm']) == 1
        perm = rec.store['randperm'][0]
        draws['draw.idx_shuffle'] = perm
        draws['draw.idx_unshuffle'] = torch.argsort(perm)
    if cfg['type'] in ('MoCo', 'DenseCL'):
        # randperm(B) with the step seed: the replay needs nothing else
        g_ref = torch.Generator().manual_seed(seeds['step_seed'])
        assert torch.equal(torch.randperm(BATCH, generator=g_ref),
                           draws['draw.idx_shuffle'])
        l_pos, l_neg = dbg['debug.l_pos'], dbg['debug.l_neg']
        qn = nn.functional.normalize(dbg['debug.q'], dim=1)
        assert torch.allclose(
            qn @ init_sd['queue'], l_neg, atol=1e-6), 'l_neg vs queue'
        kn = nn.functional.normalize(dbg['debug.k_shuffled'],
                                     dim=1)[draws['draw.idx_unshuffle']]
        assert torch.allclose((qn * kn).sum(1, keepdim=True), l_pos,
                              atol=1e-6)
        # the queue got k (unshuffled) at ptr 0
        assert torch.equal(after['queue'][:, :BATCH], kn.t())
        assert int(after['queue_ptr'][0]) == BATCH

    # ---- the second iteration: same model (at iter1), same SGD object (its
    # momentum buffers carry over), a second seeded batch
    inputs2 = make_inputs(case['views'], seeds['data2_seed'])
    check_relu_margin(
        copy.deepcopy(model).train(), inputs2, f'{name} (iteration 2)')
    rec2 = Recorder()
    if cfg['type'] in ('MoCo', 'DenseCL'):
        rec2.wrap_randperm()  # recording only (the replays do not wrap)
    try:
        torch.manual_seed(seeds['step2_seed'])
        losses2 = model([x.clone() for x in inputs2], data_samples(),
                        mode='loss')
    finally:
        rec2.close()
    parsed2, _ = model.parse_losses(losses2)
    losses2 = {k: v.detach().clone() for k, v in losses2.items()}
    parsed2.backward()
    grads2 = {}
    for k, p in model.named_parameters(remove_duplicate=False):
        if p.grad is not None:
            grads2[k] = p.grad.detach().clone()
    assert set(grads2) == set(grads), (name, set(grads2) ^ set(grads))
    opt.step()
    opt.zero_grad()
    iter2 = clone_sd(model)
    after2 = state_after_following_update(model, cfg)
    queue_after2 = None
    if queue is not None:
        queue_after2 = model.head.loss.queue.detach().clone()
        # iteration 2 shifted the queue left by iteration 1 once more
        for i in range(queue_after2.shape[0]):
            assert torch.equal(queue_after2[i, BATCH:],
                               queue_after[i, :-BATCH]), 'swav queue 2'
    draws2 = {}
    if 'randperm' in rec2.store:
        assert len(rec2.store['randperm']) == 1
        perm2 = rec2.store['randperm'][0]
        g_ref = torch.Generator().manual_seed(seeds['step2_seed'])
        assert torch.equal(torch.randperm(BATCH, generator=g_ref), perm2)
        draws2['draw2.idx_shuffle'] = perm2
        draws2['draw2.idx_unshuffle'] = torch.argsort(perm2)
    if cfg['type'] in ('MoCo', 'DenseCL'):
        # the queue is written at [:, 4:8] in iteration 2, nothing else moves
        for q in [k for k in iter2 if k.startswith('queue') and
                  not k.endswith('_ptr')]:
            assert int(iter1[q + '_ptr'][0]) == BATCH
            assert int(iter2[q + '_ptr'][0]) == 2 * BATCH
            assert torch.equal(iter2[q][:, :BATCH], iter1[q][:, :BATCH])
            assert torch.equal(iter2[q][:, 2 * BATCH:],
                               init_sd[q][:, 2 * BATCH:])
            assert not torch.equal(iter2[q][:, BATCH:2 * BATCH],
                                   iter1[q][:, BATCH:2 * BATCH])
    check_momentum_buffers(
        name, cfg, model, init_sd, [iter1, iter2], [after, after2],
        [inputs, inputs2], [draws, draws2])

    # ---- tensors
    tensors = {}
    for i, x in enumerate(inputs):
        tensors[f'inputs.{i}'] = x
    tensors.update(feat_train)
    tensors.update(feat_eval)
    for k, v in losses.items():
        tensors[f'loss.{k}'] = v.reshape(1)
    tensors['loss_total'] = parsed.detach().reshape(1)
    for k, v in grads.items():
        tensors[f'grad.{k}'] = v
    for k, v in after.items():
        tensors[f'after_update.{k}'] = v
    tensors.update(draws)
    if queue is not None:
        tensors['queue.before'] = queue
        tensors['queue.after'] = queue_after
    tensors.update(dbg)
    # ---- two-iteration state (see tools/README.md)
    for k, v in iter1.items():
        tensors[f'iter1.{k}'] = v
    for i, x in enumerate(inputs2):
        tensors[f'inputs2.{i}'] = x
    for k, v in losses2.items():
        tensors[f'loss2.{k}'] = v.reshape(1)
    tensors['loss2_total'] = parsed2.detach().reshape(1)
    for k, v in grads2.items():
        tensors[f'grad2.{k}'] = v
    for k, v in iter2.items():
        tensors[f'iter2.{k}'] = v
    for k, v in after2.items():
        tensors[f'after_update2.{k}'] = v
    tensors.update(draws2)
    if queue is not None:
        tensors['queue.after2'] = queue_after2
    tensors = {k: to_f32(v) for k, v in tensors.items()}
    save_file(
        tensors,
        os.path.join(d, 'io.safetensors'),
        metadata={
            'generator':
            f'{GENERATOR} case={name} '
            f'mmselfsup={mmselfsup.__version__} torch={torch.__version__}'
        })

    f32err = float32_error(model0, cfg, inputs, queue, seeds, parsed.detach(),
                           grads, {**feat_train, **feat_eval})
    # both iterations in float64 (tolerance guidance for iteration 2)
    f32err2 = float32_error2(model0, cfg, inputs, inputs2, queue, seeds,
                             tensors)
    write_float32_error2(os.path.join(d, 'float32_error2.json'), f32err2)
    del model0

    cfg_json = copy.deepcopy(cfg)
    cfg_json['batch_size'] = BATCH
    cfg_json['views'] = case['views']
    cfg_json['seeds'] = seeds
    cfg_json['max_iters'] = MAX_ITERS
    cfg_json['optimizer'] = copy.deepcopy(OPTIMIZER)
    if queue is not None:
        cfg_json['swav_queue'] = dict(
            shape=list(queue.shape),
            use_queue=True,
            note='model.head.loss.queue / use_queue set by hand, as '
            'SwAVHook.before_train_epoch would; not in the state_dict')
    cfg_json['float32_error'] = f32err
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(cfg_json, f, indent=1)

    # ================= validation ==========================================
    ckpt = torch.load(
        os.path.join(d, 'model.pth'), map_location='cpu', weights_only=True)

    def fresh(extra_seed, identity_preproc=False):
        c = copy.deepcopy(cfg)
        if identity_preproc:
            c['data_preprocessor'] = dict(
                mean=[0., 0., 0.], std=[1., 1., 1.], bgr_to_rgb=False)
        m = build_model(c, seeds['init_seed'] + extra_seed)
        res = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not res.missing_keys and not res.unexpected_keys
        for k, v in m.state_dict().items():
            assert torch.equal(v, init_sd[k]), (name, k)
        if queue is not None:
            set_queue(m, queue)
        return m

    # replay A: mmengine's train_step, no patches, no hooks, two iterations
    # with one OptimWrapper
    m2 = fresh(999, identity_preproc=True)
    ow = build_optim_wrapper(
        m2, dict(type='OptimWrapper', optimizer=copy.deepcopy(OPTIMIZER)))

    def replay_iteration(data_inputs, seed, loss_ref, state_ref, after_ref,
                         queue_ref, what):
        data = dict(
            inputs=[x.clone() for x in data_inputs],
            data_samples=data_samples())
        torch.manual_seed(seed)
        log = m2.train_step(data, ow)
        assert torch.equal(
            torch.as_tensor(log['loss']).reshape(1),
            loss_ref.detach().reshape(1)), (name, what, log['loss'], loss_ref)
        sd2 = m2.state_dict()
        assert list(sd2.keys()) == list(state_ref.keys())
        for k, v in sd2.items():
            assert torch.equal(v, state_ref[k]), (name, what, k)
        sd2u = state_after_following_update(m2, cfg)
        assert list(sd2u.keys()) == list(after_ref.keys())
        for k, v in sd2u.items():
            assert torch.equal(v, after_ref[k]), (name, what, 'update', k)
        if queue is not None:
            assert torch.equal(m2.head.loss.queue, queue_ref)

    replay_iteration(inputs, seeds['step_seed'], parsed, iter1, after,
                     queue_after, 'iter1')
    replay_iteration(inputs2, seeds['step2_seed'], parsed2, iter2, after2,
                     queue_after2, 'iter2')

    # replay B: losses, grads and features by hand
    m3 = fresh(555)
    opt3 = make_sgd(m3)
    ft3, fe3 = features(m3, inputs)
    for k, v in {**ft3, **fe3}.items():
        assert torch.equal(v, tensors[k]), (name, k)
    torch.manual_seed(seeds['step_seed'])
    l3 = m3([x.clone() for x in inputs], data_samples(), mode='loss')
    p3, _ = m3.parse_losses(l3)
    for k, v in l3.items():
        assert torch.equal(v.detach().reshape(1), tensors[f'loss.{k}']), k
    p3.backward()
    g3 = {
        k: p.grad
        for k, p in m3.named_parameters(remove_duplicate=False)
        if p.grad is not None
    }
    assert set(g3) == set(grads), (name, set(g3) ^ set(grads))
    for k, v in g3.items():
        assert torch.equal(v, grads[k]), (name, 'grad', k)
    opt3.step()
    opt3.zero_grad()
    torch.manual_seed(seeds['step2_seed'])
    l3 = m3([x.clone() for x in inputs2], data_samples(), mode='loss')
    p3, _ = m3.parse_losses(l3)
    assert torch.equal(p3.detach().reshape(1), tensors['loss2_total'])
    for k, v in l3.items():
        assert torch.equal(v.detach().reshape(1), tensors[f'loss2.{k}']), k
    p3.backward()
    g3 = {
        k: p.grad
        for k, p in m3.named_parameters(remove_duplicate=False)
        if p.grad is not None
    }
    assert set(g3) == set(grads2), (name, set(g3) ^ set(grads2))
    for k, v in g3.items():
        assert torch.equal(v, grads2[k]), (name, 'grad2', k)
    opt3.step()
    for k, v in m3.state_dict().items():
        assert torch.equal(v, iter2[k]), (name, 'replay B iter2', k)

    return dict(
        case=name,
        losses={k: float(v) for k, v in losses.items()},
        losses2={k: float(v) for k, v in losses2.items()},
        n_tensors=len(tensors),
        n_state=sum(v.numel() for v in init_sd.values()),
        n_grads=len(grads),
        tensors=tensors,
        bn_names=bn_names,
        f32err=f32err,
        f32err2=error2_summary(f32err2, mprefix),
        dir=d)


# ---------------------------------------------------------------- full keys
FULL_CONFIGS = [
    'simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py',
    'mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
    'mocov1/mocov1_resnet50_8xb32-steplr-200e_in1k.py',
    'byol/byol_resnet50_16xb256-coslr-200e_in1k.py',
    'simsiam/simsiam_resnet50_8xb32-coslr-100e_in1k.py',
    'barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py',
    'densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py',
    'swav/swav_resnet50_8xb32-mcrop-2-6-coslr-200e_in1k-224-96.py',
    'mocov3/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.py',
    'mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py',
    'mocov3/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py',
]


def full_model_keys(out_dir, limit=600 * 1024):
    """Keys/shapes of the real full-size models (configs as shipped, SyncBN
    kept: it only matters in forward). They are built on the CPU without
    ``init_weights`` (the meta device fails in mmcls ResNet, which calls
    ``.item()`` on a ``torch.linspace`` of drop-path rates)."""
    res = {}
    for rel in FULL_CONFIGS:
        cfg = Config.fromfile(os.path.join(CONFIG_DIR, rel))
        model = MODELS.build(cfg.model)
        name = os.path.splitext(os.path.basename(rel))[0]
        res[name] = [
            dict(key=k, shape=list(v.shape))
            for k, v in model.state_dict().items()
        ]
        del model
    path = os.path.join(out_dir, 'contrastive_keys.json')
    text = json.dumps(res, separators=(',', ':'))
    dropped = []
    if len(text) > limit:
        dropped.append('mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k')
        del res[dropped[0]]
        text = json.dumps(res, separators=(',', ':'))
    with open(path, 'w') as f:
        f.write(text)
    return res, len(text), dropped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument(
        '--list', action='store_true', help='print every tensor name')
    ap.add_argument('--cases', nargs='*', default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='ERROR')
    MMLogger.get_current_instance().setLevel('ERROR')
    os.makedirs(args.out, exist_ok=True)

    names = args.cases or list(CASES)
    results = [run_case(n, CASES[n], args.out) for n in names]
    keys, nbytes, dropped = full_model_keys(args.out)

    print()
    total = 0
    for r in results:
        sizes = {
            f: os.path.getsize(os.path.join(r['dir'], f))
            for f in sorted(os.listdir(r['dir']))
        }
        total += sum(sizes.values())
        print(f'{r["case"]:<18} losses={r["losses"]} '
              f'losses2={r["losses2"]} tensors={r["n_tensors"]}'
              f' grads={r["n_grads"]} state_elems={r["n_state"]} '
              f'bytes={sum(sizes.values())} {sizes}')
    for r in results:
        e = r['f32err']
        print(f'{r["case"]:<18} f32 vs f64: loss {e["loss_rel"]:.1e} feat '
              f'{e["feat_rel"]:.1e} grad max {e["grad_rel_max"]:.1e} '
              f'median {e["grad_rel_median"]:.1e} abs {e["grad_abs_err_max"]:.1e}'
              f'/{e["grad_abs_max"]:.1e} zero-grads '
              f'{e["analytically_zero_grads"]}')
    print('float32_error2.json, largest rel (max|f32-f64|/max|f64|; '
          'tensors with max|f64| < 1e-10 left out):')
    for r in results:
        print(f'{r["case"]:<18} ' + ' '.join(
            f'{g} {v[0]:.1e} ({v[1]})' for g, v in r['f32err2'].items()))
    print(f'contrastive_keys.json: {nbytes} bytes, configs {list(keys)}, '
          f'dropped {dropped}')
    total += nbytes
    print(f'total bytes written: {total}')
    if args.list:
        for r in results:
            print(f'\n== {r["case"]}/io.safetensors')
            for k, v in r['tensors'].items():
                print(f'  {k:<70} {list(v.shape)}')
            print(f'  BN perturbed: {r["bn_names"]}')
    print('all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
