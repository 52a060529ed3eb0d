#!/usr/bin/env python
"""Generate golden fixtures for the masked-image-modelling family from the REAL
MMSelfSup 1.0.0 reference: SimMIM, MaskFeat, PixMIM, MixMIM and the target
generators HOGGenerator and LowFreqTargetGenerator.

What it does
------------
Two target-generator cases (no model, no optimiser):

- ``hog_tiny``: the real ``HOGGenerator(nbins=9, pool=8, gaussian_window=16)``
  (the MaskFeat config's) on a (2,3,112,112) and a (1,3,224,224) batch: its
  buffers, the histogram ``self.out`` before ``_reshape``, the features, the
  un-normalised cell histograms, and the ``generate_hog_image`` picture of the
  224 input.
- ``lowfreq_tiny``: the real ``LowFreqTargetGenerator`` for a square (32,
  radius 6) and a non-square (24x32, radius 5) size: the ``low_pass_filter``
  buffer, the outputs, and the complex ``ifft2`` result before ``abs()``.

Four algorithm cases (``maskfeat_tiny``, ``pixmim_tiny``, ``simmim_tiny``,
``mixmim_tiny``). For each it:

1. builds the algorithm through the mmselfsup registry from a plain dict
   (``register_all_modules()`` + ``MODELS.build(ConfigDict(cfg))``; MixMIM's
   ``__init__`` reads ``neck.encoder_stride`` as an attribute, so a plain dict
   would fail). Every field is the real config's except the sizes (tiny
   arch dicts, tiny images) and ``drop_path_rate=0`` for SimMIM (the
   ``SimMIMSwinTransformer`` default, which the real config keeps, is 0.1).
   MaskFeat's data preprocessor is the identity (mean 0, std 1, no BGR swap):
   its inputs are float images chosen away from HOG bin ties (see below).
   The dict is saved as ``config.json``;
2. seeds torch/numpy/random and calls ``model.init_weights()`` as mmengine's
   Runner does, and saves ``model.pth`` (``{'meta', 'state_dict'}``, the layout
   of a real checkpoint; target-generator buffers included) and ``keys.json``;
3. builds the optimiser with mmengine's ``build_optim_wrapper`` from the real
   config's ``optim_wrapper`` (``type='OptimWrapper'`` instead of
   ``AmpOptimWrapper``, no ``loss_scale``, lr 1e-3; ``paramwise_cfg`` and
   ``clip_grad`` verbatim) before the forward, as the Runner does;
4. runs two training iterations exactly as ``BaseModel.train_step`` does
   (data preprocessor -> ``_run_forward(mode='loss')`` -> ``parse_losses``
   -> ``optim_wrapper.backward`` -> (gradients recorded) -> ``step`` (clips)
   -> ``zero_grad``), each on its own seeded batch, packed with the real
   ``PackSelfSupInputs`` and mmengine's ``default_collate`` (masks travel in
   ``data_samples[i].mask.value`` as the pipelines deliver them). The random
   draws are:
   - SimMIM / MaskFeat: none inside the model; the masks come from the real
     ``SimMIMMaskGenerator`` (numpy RNG) / ``BEiTMaskGenerator`` (python RNG)
     with fixed seeds, and are recorded;
   - PixMIM: ``torch.rand(B, L)`` in ``MAEViT.random_masking``, one call per
     forward, replaced by the recorded ``noise`` (as ``gen_fixtures.py`` does
     for MAE);
   - MixMIM: ``torch.rand(1, 1, L4)`` in
     ``MixMIMTransformerPretrain.random_masking``, one call per forward,
     replaced by the recorded ``noise``; the same function also calls
     ``random.uniform(0.0, range_mask_ratio)`` (python RNG) once, which is
     0.0 whatever the RNG state with the default ``range_mask_ratio=0``
     (recorded and asserted, not replaced);
5. records inputs, masks/noise, target-generator outputs, backbone / neck
   outputs and intermediates, every loss entry, every gradient, the total
   gradient norm that ``clip_grad`` saw, the whole state_dict after each
   iteration (``iter1.*``, ``iter2.*``), and the tensor-mode features of the
   initial model in eval mode, in ``io.safetensors``;
6. validates (aborts on any mismatch): replay A, a fresh model (other init
   seed) loaded from ``model.pth`` (strict, ``weights_only=True``) runs
   mmengine's real ``model.train_step`` twice with **no patching at all**:
   the draws are reproduced by ``torch.manual_seed(noise_seed)`` before each
   ``train_step`` (``torch.rand`` then draws exactly ``noise``); the loss and
   every state_dict entry must be bit-equal to ``iter1``/``iter2``. Replay B
   reruns both iterations by hand on another fresh model: every loss entry
   and gradient bit-equal. Losses and targets are also re-derived in plain
   torch, and structural claims (SimMIM shift on/off, MixMIM mask
   upsampling and mixing) are checked;
7. reruns both iterations in float64 from ``model.pth`` with the same draws
   and stores how far float32 is from it: ``float32_error`` in
   ``config.json`` (worst per group) and ``float32_error2.json`` (every
   tensor). For MaskFeat, whose ``HOGGenerator.forward`` allocates its
   histogram as float32 whatever the input, the float64 run binds a copy of
   that forward with the histogram in the input dtype (float64 run only).

HOG bin ties. A pixel whose orientation ``atan2(gx, gy)/pi*9`` lies near an
integer changes bin (and its cell's 9 features) under float round-off. The
HOG inputs (``hog_tiny`` and MaskFeat) are therefore ``randn`` values rounded
to float16 (stored losslessly as F16) and then "repaired": while some pixel
is within ``TIE_MARGIN`` of a bin edge (in phase units, or in gradient units
``d*|g|*pi/9``), one of its diagonal neighbours is moved by one float16 ulp.
The first and last columns, where reflect padding makes ``gx`` exactly 0 in
torch (phase exactly 0 or +-9, bin 0), are exempt. The float64 HOG gives the
same bins everywhere (checked).

It also writes ``mim_keys.json``: the state_dict keys, shapes and dtypes of
the full-size models the real configs build (SimMIM Swin-B and Swin-L at
192, MaskFeat ViT-B, PixMIM ViT-B, MixMIM-B).

How to run
----------
    .venv-reference/bin/python tools/gen_fixtures_mim.py --out tests/fixtures [--list] [--cases ...]

The reference venv (MMSelfSup 1.0.0, mmcls 1.0.0rc6, mmengine 0.10.7,
mmcv-lite 2.0.1, torch 2.9.0, CPU; pinned in ``tools/reference/``) is created
by ``tools/reference/setup.sh``; it is NOT committed. ``tools/fixtures.py
--check`` reruns every generator and compares the results with
``tests/fixtures/SHA256SUMS``. Everything is float32 on CPU, one thread,
fixed seeds; re-running reproduces the files byte for byte. See
tools/README.md for the meaning, dtype and layout of every tensor.
"""
import argparse
import copy
import json
import math
import os
import random
import sys
import time
import warnings

warnings.filterwarnings('ignore')

import pin_cpu_kernels  # noqa: E402,F401  (AVX2 kernels; before torch, see that file)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mmcls  # noqa: E402
import mmengine  # noqa: E402
import mmselfsup  # noqa: E402
from mmcls.models.utils.attention import ShiftWindowMSA  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.dataset import default_collate  # noqa: E402
from mmengine.logging import MessageHub, MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmselfsup.registry import MODELS, TRANSFORMS  # noqa: E402
from mmselfsup.utils import register_all_modules  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

GENERATOR = 'tools/gen_fixtures_mim.py'
MMSELFSUP_DIR = os.path.dirname(mmselfsup.__file__)
CONFIG_DIR = os.path.join(MMSELFSUP_DIR, '.mim', 'configs', 'selfsup')

MASKFEAT_CFG = 'maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py'
PIXMIM_CFG = 'pixmim/pixmim_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
SIMMIM_CFG = 'simmim/simmim_swin-base_8xb256-amp-coslr-100e_in1k-192.py'
SIMMIM_L_CFG = 'simmim/simmim_swin-large_16xb128-amp-coslr-800e_in1k-192.py'
SIMMIM_B_100E_CFG = 'simmim/simmim_swin-base_16xb128-amp-coslr-100e_in1k-192.py'
MIXMIM_CFG = 'mixmim/mixmim-base-p16_16xb128-coslr-300e_in1k.py'

# Small-config learning rate for every case (the real ones: MaskFeat 1.6e-3,
# PixMIM 2.4e-3, SimMIM 8e-4, MixMIM 1.2e-3), no scheduler.
SMALL_LR = 1e-3
BATCH = 2
IDENTITY_PREPROCESSOR = dict(
    mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], bgr_to_rgb=False)
# HOG bin-edge margin (phase units, and gradient units d*|g|*pi/9)
TIE_MARGIN = 1e-5
IMAGENET_MEAN01 = [0.485, 0.456, 0.406]
IMAGENET_STD01 = [0.229, 0.224, 0.225]


def cfg_path(rel):
    return os.path.join(CONFIG_DIR, rel)


# ================================================================ helpers
def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg, init_seed):
    seed_all(init_seed)
    model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    model.init_weights()
    model.train()
    return model


def clone_sd(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def stored(v):
    """Tensor as written: floats float32 (float16 kept: lossless inputs),
    integers int64, uint8 images kept."""
    v = v.detach()
    if v.dtype in (torch.float64, torch.float32):
        v = v.to(torch.float32)
    elif v.dtype == torch.bool or v.dtype in (torch.int32, torch.int16):
        v = v.to(torch.int64)
    assert v.dtype in (torch.float32, torch.float16, torch.int64,
                       torch.uint8), v.dtype
    return v.contiguous()


def save_io(path, tensors, name):
    save_file(
        {k: stored(v) for k, v in tensors.items()},
        path,
        # one metadata key only: safetensors writes a HashMap, so several
        # keys would come out in a random order and break byte-identity
        metadata={
            'generator':
            f'{GENERATOR} case={name} '
            f'mmselfsup={mmselfsup.__version__} torch={torch.__version__}'
        })


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')


def sig4(x):
    """A float rounded to 4 significant digits (deterministic, short JSON)."""
    return float(f'{x:.4g}')


def rel_err(a32, b64):
    err = float((a32.double() - b64.double()).abs().max())
    scale = float(b64.double().abs().max())
    return err / max(scale, 1e-30), err, scale


def meta_of(name, seed):
    return dict(
        mmselfsup_version=str(mmselfsup.__version__),
        mmcls_version=str(mmcls.__version__),
        mmengine_version=str(mmengine.__version__),
        torch_version=str(torch.__version__),
        epoch=0,
        iter=0,
        seed=seed,
        fixture_case=name,
        generator=GENERATOR)


def keys_entries(model):
    pn = dict(model.named_parameters())
    out = []
    for k, v in model.state_dict().items():
        out.append(
            dict(
                key=k,
                shape=list(v.shape),
                dtype=str(v.dtype).replace('torch.', ''),
                is_parameter=k in pn,
                requires_grad=bool(k in pn and pn[k].requires_grad)))
    return out


def write_lines_json(path, entries):
    """A JSON list with one entry per line (small, diffable)."""
    with open(path, 'w') as f:
        f.write('[\n' + ',\n'.join(
            json.dumps(e, separators=(',', ':')) for e in entries) + '\n]\n')


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


def real_optim_wrapper(rel):
    """The real config's optim_wrapper as the fixture uses it: OptimWrapper
    (fp32; the AMP settings dropped), lr SMALL_LR, everything else
    verbatim. Returns (fixture cfg, real cfg)."""
    real = Config.fromfile(cfg_path(rel)).optim_wrapper.to_dict()
    ow = copy.deepcopy(real)
    assert ow['type'] in ('OptimWrapper', 'AmpOptimWrapper'), ow
    ow['type'] = 'OptimWrapper'
    ow.pop('loss_scale', None)
    ow['optimizer']['lr'] = SMALL_LR
    assert set(ow) <= {'type', 'optimizer', 'paramwise_cfg', 'clip_grad'}, ow
    return ow, real


def jsonable(x):
    """Tuples to lists (JSON), recursively."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


# ================================================================ data
def pack(img, **kw):
    """The real PackSelfSupInputs on one pipeline result."""
    t = TRANSFORMS.build(
        dict(
            type='PackSelfSupInputs',
            algorithm_keys=sorted(kw),
            meta_keys=[]))
    return t(dict(img=img, **kw))


def hwc(x):
    """(3,H,W) tensor -> (H,W,3) array (PackSelfSupInputs turns it back into
    the same CHW tensor bit for bit)."""
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy())


def make_data(images, masks=None):
    """images: (B,3,H,W) uint8 (BGR, as mmcv loads) or float32; masks: a
    list of (h,w) int arrays or None. Packed and collated as the real
    dataloader does (``default_collate``)."""
    items = []
    for b in range(images.shape[0]):
        kw = {} if masks is None else dict(mask=masks[b])
        items.append(pack(hwc(images[b]), **kw))
    return default_collate(items)


def raw_images(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def simmim_masks(n, seed, cfg):
    np.random.seed(seed)
    gen = TRANSFORMS.build(dict(type='SimMIMMaskGenerator', **cfg))
    return [gen(dict())['mask'] for _ in range(n)]


def beit_masks(n, seed, cfg):
    random.seed(seed)
    gen = TRANSFORMS.build(dict(type='BEiTMaskGenerator', **cfg))
    return [gen(dict())['mask'] for _ in range(n)]


class InjectRand:
    """Replace torch.rand for the calls inside a masking function: each call
    gets the next recorded noise tensor (shape asserted)."""

    def __init__(self, *noises):
        self.noises = list(noises)
        self.calls = 0

    def __enter__(self):
        self._orig = torch.rand

        def fake(*size, **kwargs):
            if len(size) == 1 and isinstance(size[0], (tuple, list)):
                size = tuple(size[0])
            noise = self.noises[self.calls]
            assert tuple(size) == tuple(noise.shape), (size, noise.shape)
            self.calls += 1
            return noise.clone().to(kwargs.get('device', 'cpu'))

        torch.rand = fake
        return self

    def __exit__(self, *a):
        torch.rand = self._orig


class NoInject:
    calls = 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class RecordUniform:
    """Counts random.uniform calls (recording only; the value is returned
    unchanged)."""

    def __init__(self):
        self.calls = []

    def __enter__(self):
        self._orig = random.uniform

        def wrapped(a, b):
            r = self._orig(a, b)
            self.calls.append((a, b, r))
            return r

        random.uniform = wrapped
        return self

    def __exit__(self, *a):
        random.uniform = self._orig


# ================================================================ HOG
def hog_grad_phase(gen, x):
    """gx, gy and the phase exactly as HOGGenerator.forward computes them."""
    xp = F.pad(x, pad=(1, 1, 1, 1), mode='reflect')
    gx = F.conv2d(xp, gen.weight_x, bias=None, stride=1, padding=0, groups=3)
    gy = F.conv2d(xp, gen.weight_y, bias=None, stride=1, padding=0, groups=3)
    phase = torch.atan2(gx, gy)
    phase = phase / gen.pi * gen.nbins
    return gx, gy, phase


@torch.no_grad()
def hog_forward_any_dtype(gen, x, keep=None):
    """HOGGenerator.forward with the histogram allocated in x's dtype (the
    reference hard-codes float32, which float64 input cannot scatter into).
    In float32 it is bit-equal to the real forward (checked). ``keep``
    receives the un-normalised pooled histogram."""
    gen.h, gen.w = x.size(-2), x.size(-1)
    gx_rgb, gy_rgb, phase = hog_grad_phase(gen, x)
    norm_rgb = torch.stack([gx_rgb, gy_rgb], dim=-1).norm(dim=-1)
    b, c, h, w = norm_rgb.shape
    out = torch.zeros((b, c, gen.nbins, h, w), dtype=x.dtype, device=x.device)
    phase = phase.view(b, c, 1, h, w)
    norm_rgb = norm_rgb.view(b, c, 1, h, w)
    if gen.gaussian_window:
        if h != gen.gaussian_window:
            assert h % gen.gaussian_window == 0
            repeat_rate = h // gen.gaussian_window
            kernel = gen.gaussian_kernel.repeat([repeat_rate, repeat_rate])
        else:
            kernel = gen.gaussian_kernel
        norm_rgb *= kernel
    out.scatter_add_(2, phase.floor().long() % gen.nbins, norm_rgb)
    out = out.unfold(3, gen.pool, gen.pool)
    out = out.unfold(4, gen.pool, gen.pool)
    out = out.sum(dim=[-1, -2])
    if keep is not None:
        keep.append(out.clone())
    gen.out = F.normalize(out, p=2, dim=2)
    return gen._reshape(gen.out)


def hog_bins(gen, x):
    return hog_grad_phase(gen, x)[2].floor().long() % gen.nbins


def hog_tie_flags(gen, x):
    """Pixels within TIE_MARGIN of a bin edge. Exempt: the first/last column
    when gx is exactly 0 there (reflect padding: torch's depthwise conv gives
    an exact 0, so the phase is exactly 0 or +-9, bin 0) and pixels with
    gx = gy = 0 (no weight)."""
    gx, gy, ph = hog_grad_phase(gen, x)
    d = (ph - ph.round()).abs().double()
    g = torch.sqrt(gx.double()**2 + gy.double()**2)
    W = x.shape[-1]
    col = torch.arange(W)
    edge_col = ((col == 0) | (col == W - 1)).view(1, 1, 1, W)
    exempt = (edge_col & (gx == 0)) | ((gx == 0) & (gy == 0))
    dg = d * g * math.pi / gen.nbins
    flag = ~exempt & ((d < TIE_MARGIN) | (dg < TIE_MARGIN))
    live = ~exempt
    return flag, float(d[live].min()), float(dg[live].min())


def hog_inputs(gen, shape, seed):
    """randn rounded to float16, then repaired away from HOG bin ties (see
    the module docstring). Returns (float16 tensor, number of nudges,
    margins)."""
    g = torch.Generator().manual_seed(seed)
    x16 = torch.randn(shape, generator=g).to(torch.float16)
    arr = x16.numpy().copy()
    nudges = 0
    for _ in range(200):
        flag, dmin, dgmin = hog_tie_flags(gen, torch.from_numpy(arr).float())
        idx = flag.nonzero().tolist()
        if not idx:
            break
        touched = set()
        for b, c, i, j in idx:
            i2 = i - 1 if i > 0 else i + 1
            j2 = j - 1 if j > 0 else j + 1
            if (b, c, i2, j2) in touched:
                continue
            touched.add((b, c, i2, j2))
            arr[b, c, i2, j2] = np.nextafter(arr[b, c, i2, j2],
                                             np.float16(np.inf))
        nudges += len(touched)
    else:
        raise SystemExit(f'HOG tie repair did not converge for seed {seed}')
    x = torch.from_numpy(arr)
    # every edge column has gx == 0 exactly in torch
    gx, _, _ = hog_grad_phase(gen, x.float())
    assert bool((gx[..., 0] == 0).all()) and bool((gx[..., -1] == 0).all())
    return x, nudges, dict(min_phase_distance=sig4(dmin),
                           min_gradient_distance=sig4(dgmin))


def hog_image_u8(img):
    """generate_hog_image returns float64 with integer values 0..255."""
    assert img.dtype == np.float64
    assert np.all(img == np.round(img)) and img.min() >= 0 and img.max() <= 255
    return torch.from_numpy(img.astype(np.uint8))


# ================================================================ hog_tiny
HOG_CFG = dict(type='HOGGenerator', nbins=9, pool=8, gaussian_window=16)


def run_hog(out_dir):
    name = 'hog_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    seeds = dict(x1_seed=2101, x2_seed=2102)
    real = Config.fromfile(cfg_path(MASKFEAT_CFG)).model.target_generator
    assert real.to_dict() == HOG_CFG, real
    gen = MODELS.build(ConfigDict(copy.deepcopy(HOG_CFG)))
    x1, n1, m1 = hog_inputs(gen, (2, 3, 112, 112), seeds['x1_seed'])
    x2, n2, m2 = hog_inputs(gen, (1, 3, 224, 224), seeds['x2_seed'])

    t = {}
    t['weight_x'] = gen.weight_x.clone()
    t['weight_y'] = gen.weight_y.clone()
    t['gaussian_kernel'] = gen.gaussian_kernel.clone()
    t['x1'] = x1
    t['x2'] = x2
    res = {}
    for key, x in (('1', x1), ('2', x2)):
        xf = x.float()
        y = gen(xf)
        out = gen.out.clone()
        unfold = gen.unfold_size
        keep = []
        y_copy = hog_forward_any_dtype(
            copy.deepcopy(gen), xf.clone(), keep=keep)
        assert torch.equal(y_copy, y), 'HOG copy differs from the reference'
        # _reshape: feature = (c*9 + bin)*u*u + ur*u + uc, token = row-major
        B, C, K, h, w = out.shape
        u = unfold
        ref = out.reshape(B, C * K, h // u, u, w // u, u).permute(
            0, 2, 4, 1, 3, 5).reshape(B, (h // u) * (w // u), C * K * u * u)
        assert torch.equal(ref, y)
        t[f'out{key}'] = out
        t[f'features{key}'] = y
        if key == '1':
            t['hist1'] = keep[0]
        # float64 (bins must agree: tie margins)
        gen64 = copy.deepcopy(gen).double()
        y64 = hog_forward_any_dtype(gen64, x.double())
        assert torch.equal(hog_bins(gen, xf), hog_bins(gen64, x.double()))
        res[key] = dict(
            shape=list(x.shape),
            unfold_size=u,
            features_rel=sig4(rel_err(y, y64)[0]),
            out_rel=sig4(rel_err(out, gen64.out)[0]))
    # the visualisation of the last (1,3,224,224) forward: self.h/self.w and
    # self.out are those of the latest call
    img = gen.generate_hog_image(gen.out)
    assert img.shape == (224, 224)
    t['hog_image2'] = hog_image_u8(img)
    assert res['1']['unfold_size'] == 1 and res['2']['unfold_size'] == 2
    save_io(os.path.join(d, 'io.safetensors'), t, name)
    write_json(
        os.path.join(d, 'config.json'),
        dict(
            target_generator=HOG_CFG,
            seeds=seeds,
            inputs=dict(
                note='randn (seeded torch.Generator) rounded to float16, then '
                'moved by one float16 ulp at a diagonal neighbour of every '
                'pixel within tie_margin of a bin edge, until none is; '
                'stored as F16 (exact)',
                tie_margin=TIE_MARGIN,
                x1=dict(shape=[2, 3, 112, 112], nudges=n1, **m1),
                x2=dict(shape=[1, 3, 224, 224], nudges=n2, **m2)),
            float32_error=dict(
                note='float32 reference vs the same HOG in float64 '
                '(histogram allocated as float64): max|f32-f64|/max|f64|; '
                'every bin index identical',
                **{f'x{k}': v for k, v in res.items()})))
    return dict(case=name, tensors=t, dir=d)


# ================================================================ lowfreq
LOWFREQ_SIZES = {
    'square': dict(radius=6, img_size=32, batch=2),
    'rect': dict(radius=5, img_size=(24, 32), batch=2),
}


def lowfreq_manual(gen, imgs):
    """LowFreqTargetGenerator.forward step by step, with the complex image
    before abs()."""
    mean = torch.tensor(IMAGENET_MEAN01, dtype=imgs.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD01, dtype=imgs.dtype).view(1, 3, 1, 1)
    x = imgs * std + mean
    f = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    z = torch.fft.ifft2(f * gen.low_pass_filter)
    return z, (torch.abs(z) - mean) / std


def run_lowfreq(out_dir):
    name = 'lowfreq_tiny'
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    seeds = dict(square_seed=2201, rect_seed=2202)
    t = {}
    info = {}
    for key, spec in LOWFREQ_SIZES.items():
        cfg = dict(
            type='LowFreqTargetGenerator',
            radius=spec['radius'],
            img_size=spec['img_size'])
        gen = MODELS.build(copy.deepcopy(cfg))
        H, W = gen.img_size
        g = torch.Generator().manual_seed(seeds[f'{key}_seed'])
        u = torch.rand(spec['batch'], 3, H, W, generator=g)
        mean = torch.tensor(IMAGENET_MEAN01).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD01).view(1, 3, 1, 1)
        x = (u - mean) / std
        y = gen(x)
        z, y2 = lowfreq_manual(gen, x)
        assert torch.equal(y, y2), 'low-freq re-derivation'
        # the filter, re-derived
        ii, jj = torch.meshgrid(
            torch.arange(H, dtype=torch.float64),
            torch.arange(W, dtype=torch.float64),
            indexing='ij')
        circ = ((ii - (H - 1) / 2)**2 + (jj - (W - 1) / 2)**2
                <= spec['radius']**2).float()
        assert torch.equal(gen.low_pass_filter, circ.expand(3, H, W))
        gen64 = copy.deepcopy(gen).double()
        y64 = gen64(x.double())
        t[f'{key}.low_pass_filter'] = gen.low_pass_filter
        t[f'{key}.inputs'] = x
        t[f'{key}.output'] = y
        t[f'{key}.ifft_real'] = z.real
        t[f'{key}.ifft_imag'] = z.imag
        info[key] = dict(
            config=jsonable(cfg),
            inputs_shape=list(x.shape),
            filter_ones=int(gen.low_pass_filter[0].sum()),
            imag_over_real=sig4(float(z.imag.abs().max() /
                                      z.real.abs().max())),
            float32_error=sig4(rel_err(y, y64)[0]))
    save_io(os.path.join(d, 'io.safetensors'), t, name)
    write_json(
        os.path.join(d, 'config.json'),
        dict(
            seeds=seeds,
            inputs_note='u ~ U[0,1) (seeded torch.Generator), then '
            '(u - [0.485,0.456,0.406]) / [0.229,0.224,0.225] per channel, '
            'float32',
            img_size_note='img_size must be an int or a TUPLE (a list, as '
            'JSON gives, is taken as one side length and fails)',
            float32_error_note='max|f32-f64|/max|f64| of the output against '
            'the same generator in float64',
            **info))
    return dict(case=name, tensors=t, dir=d)


# ================================================================ configs
def base_model(rel):
    return Config.fromfile(cfg_path(rel)).model.to_dict()


def cfg_maskfeat():
    base = base_model(MASKFEAT_CFG)
    assert base['target_generator'] == HOG_CFG
    return dict(
        type='MaskFeat',
        # identity: the inputs are float images chosen away from HOG ties
        data_preprocessor=copy.deepcopy(IDENTITY_PREPROCESSOR),
        backbone=dict(
            type='MaskFeatViT',
            arch=dict(
                embed_dims=16,
                num_layers=2,
                num_heads=2,
                feedforward_channels=32),
            img_size=112,
            patch_size=8),
        neck=dict(
            type='LinearNeck',
            in_channels=16,
            out_channels=27,
            with_avg_pool=False,
            init_cfg=copy.deepcopy(base['neck']['init_cfg'])),
        head=copy.deepcopy(base['head']),
        target_generator=copy.deepcopy(base['target_generator']))


def cfg_pixmim():
    base = base_model(PIXMIM_CFG)
    return dict(
        type='PixMIM',
        data_preprocessor=copy.deepcopy(base['data_preprocessor']),
        backbone=dict(
            type='MAEViT',
            arch=dict(
                embed_dims=16,
                num_layers=2,
                num_heads=2,
                feedforward_channels=32),
            img_size=32,
            patch_size=8,
            mask_ratio=0.75),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=16,
            patch_size=8,
            in_chans=3,
            embed_dim=16,
            decoder_embed_dim=16,
            decoder_depth=2,
            decoder_num_heads=2,
            mlp_ratio=2.),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=8,
            loss=dict(type='MAEReconstructionLoss')),
        target_generator=dict(
            type='LowFreqTargetGenerator', radius=6, img_size=32),
        # verbatim from the MAE base model the PixMIM config inherits
        init_cfg=copy.deepcopy(base['init_cfg']))


def cfg_simmim():
    base = base_model(SIMMIM_CFG)
    return dict(
        type='SimMIM',
        data_preprocessor=copy.deepcopy(base['data_preprocessor']),
        backbone=dict(
            type='SimMIMSwinTransformer',
            arch=dict(embed_dims=8, depths=[2, 2], num_heads=[2, 4]),
            img_size=32,
            # the window size travels as in the real config
            stage_cfgs=dict(block_cfgs=dict(window_size=4)),
            out_indices=[1],
            drop_path_rate=0.0),
        neck=dict(type='SimMIMNeck', in_channels=16, encoder_stride=8),
        head=copy.deepcopy(base['head']))


def cfg_mixmim():
    base = base_model(MIXMIM_CFG)
    return dict(
        type='MixMIM',
        data_preprocessor=copy.deepcopy(base['data_preprocessor']),
        backbone=dict(
            type='MixMIMTransformerPretrain',
            # MixMIMTransformer requires num_layers and feedforward_channels
            # in a custom arch dict but never reads them
            arch=dict(
                embed_dims=4,
                depths=[1, 1, 1, 1],
                num_heads=[1, 1, 2, 2],
                num_layers=4,
                feedforward_channels=16),
            # FFN 2x (the default 4x only makes the fixture bigger)
            mlp_ratio=2,
            img_size=64,
            patch_size=4,
            window_size=[4, 4, 2, 4],
            drop_rate=0.0,
            drop_path_rate=0.0),
        neck=dict(
            type='MixMIMPretrainDecoder',
            num_patches=4,
            encoder_stride=32,
            embed_dim=32,
            decoder_embed_dim=4,
            decoder_depth=1,
            decoder_num_heads=2),
        head=copy.deepcopy(base['head']))


# ================================================================ cases
CASES = {
    'maskfeat_tiny':
    dict(cfg=cfg_maskfeat, optim=MASKFEAT_CFG, seed=2301, img=112),
    'pixmim_tiny': dict(cfg=cfg_pixmim, optim=PIXMIM_CFG, seed=2401, img=32),
    'simmim_tiny': dict(cfg=cfg_simmim, optim=SIMMIM_CFG, seed=2501, img=32),
    'mixmim_tiny': dict(cfg=cfg_mixmim, optim=MIXMIM_CFG, seed=2601, img=64),
}
TARGET_CASES = ['hog_tiny', 'lowfreq_tiny']


def seeds_of(case):
    s = case['seed']
    return dict(
        init_seed=s,
        data_seed=s + 1,  # batch 1 images
        draw_seed=s + 2,  # batch 1 mask (SimMIM/MaskFeat) or noise
        data2_seed=s + 3,
        draw2_seed=s + 4,
        eval_draw_seed=s + 5)  # the noise of the eval-mode features


class Batch:
    """One iteration's data: images, masks (data samples) or noise."""

    def __init__(self, images, masks=None, noise=None):
        self.images = images
        self.masks = masks
        self.noise = noise

    def data(self):
        return make_data(self.images, self.masks)

    def inject(self):
        return NoInject() if self.noise is None else InjectRand(self.noise)

    def seed_rng(self, seed):
        """What replay A does before train_step: torch.rand then draws
        exactly ``noise``."""
        if self.noise is not None:
            torch.manual_seed(seed)


def make_batch(name, cfg, seed, draw_seed, hog_gen=None):
    B = BATCH
    if name == 'maskfeat_tiny':
        x16, nudges, margins = hog_inputs(hog_gen, (B, 3, 112, 112), seed)
        pipe = {
            t['type']: t
            for t in Config.fromfile(cfg_path(
                MASKFEAT_CFG)).train_dataloader.dataset.pipeline
        }
        mcfg = {k: v for k, v in pipe['BEiTMaskGenerator'].items()
                if k != 'type'}
        b = Batch(x16.float(), masks=beit_masks(B, draw_seed, mcfg))
        b.f16 = x16
        b.hog_info = dict(nudges=nudges, **margins)
        b.mask_cfg = mcfg
        return b
    if name == 'simmim_tiny':
        mcfg = dict(
            input_size=32, mask_patch_size=8, model_patch_size=4,
            mask_ratio=0.6)
        b = Batch(
            raw_images((B, 3, 32, 32), seed),
            masks=simmim_masks(B, draw_seed, mcfg))
        b.mask_cfg = mcfg
        return b
    if name == 'pixmim_tiny':
        L = (32 // 8)**2
        g = torch.Generator().manual_seed(draw_seed)
        return Batch(
            raw_images((B, 3, 32, 32), seed),
            noise=torch.rand(B, L, generator=g))
    if name == 'mixmim_tiny':
        L4 = (64 // 32)**2
        g = torch.Generator().manual_seed(draw_seed)
        return Batch(
            raw_images((B, 3, 64, 64), seed),
            noise=torch.rand(1, 1, L4, generator=g))
    raise KeyError(name)


# ----------------------------------------------------------- recording
class Recorder:
    def __init__(self):
        self.store = {}
        self.handles = []
        self.restore = []

    def put(self, k, v):
        if isinstance(v, (list, tuple)):
            v = type(v)(x.detach().clone() if torch.is_tensor(x) else x
                        for x in v)
        else:
            v = v.detach().clone()
        self.store.setdefault(k, []).append(v)

    def out(self, module, k, pick=lambda o: o):
        self.handles.append(
            module.register_forward_hook(
                lambda m, i, o: self.put(k, pick(o))))

    def inp(self, module, k, pick=lambda a: a[0]):
        self.handles.append(
            module.register_forward_pre_hook(
                lambda m, a: self.put(k, pick(a))))

    def wrap_method(self, obj, attr, k):
        orig = getattr(obj, attr)

        def f(*a, **kw):
            r = orig(*a, **kw)
            self.put(k, r)
            return r

        setattr(obj, attr, f)
        self.restore.append(lambda: delattr(obj, attr))

    def close(self):
        for h in self.handles:
            h.remove()
        for r in self.restore:
            r()

    def one(self, k):
        v = self.store[k]
        assert len(v) == 1, (k, len(v))
        return v[0]


def install_recorders(name, model, rec):
    bb = model.backbone
    if name == 'maskfeat_tiny':
        rec.out(bb, 'latent')
        rec.out(model.neck, 'neck', pick=lambda o: o[0])
        rec.out(model.target_generator, 'target')
        rec.out(bb.patch_embed, 'debug.patch_embed', pick=lambda o: o[0])
    elif name == 'pixmim_tiny':
        rec.out(model.target_generator, 'target_lowfreq')
        rec.out(bb, 'backbone')
        rec.out(model.neck, 'pred')
    elif name == 'simmim_tiny':
        rec.out(bb.patch_embed, 'debug.patch_embed', pick=lambda o: o[0])
        # drop_after_pos (p=0) sees x right after the mask-token mixing
        rec.out(bb.drop_after_pos, 'debug.masked_embed')
        for i, st in enumerate(bb.stages):
            rec.out(st.blocks[-1], f'debug.stage{i}.blocks')
            rec.out(st, f'debug.stage{i}.out', pick=lambda o: o[0])
        rec.out(bb, 'feat', pick=lambda o: o[0])
        rec.out(model.neck, 'rec')
    elif name == 'mixmim_tiny':
        rec.wrap_method(bb, 'random_masking', 'masks')
        rec.out(bb.drop_after_pos, 'debug.mixed_embed')
        rec.out(bb.patch_embed, 'debug.patch_embed', pick=lambda o: o[0])
        for i, layer in enumerate(bb.layers):
            rec.out(layer, f'debug.layer{i}.out')
        rec.out(bb, 'backbone')
        rec.out(model.neck, 'x_rec')


def intermediates(name, model, rec, inputs):
    """Readable tensor names for the recorded run (iteration 1)."""
    t = {}
    s = rec.store
    if name == 'maskfeat_tiny':
        lat = rec.one('latent')
        t['latent'] = lat
        B, L, _ = lat.shape
        t['pred'] = rec.one('neck').view(B, L, -1)
        t['target'] = rec.one('target')
        t['debug.patch_embed'] = rec.one('debug.patch_embed')
    elif name == 'pixmim_tiny':
        lat, mask, ids_restore = rec.one('backbone')
        t['target_lowfreq'] = rec.one('target_lowfreq')
        t['latent'] = lat
        t['mask'] = mask
        t['ids_restore'] = ids_restore
        t['pred'] = rec.one('pred')
        t['target'] = model.head.construct_target(
            t['target_lowfreq']).detach()
    elif name == 'simmim_tiny':
        for k in s:
            if k.startswith('debug.'):
                t[k] = rec.one(k)
        t['feat'] = rec.one('feat')
        t['rec'] = rec.one('rec')
        # the shifted block's attention mask (stage 0, 8x8 map, window 4,
        # shift 2): 4 windows x 16 x 16, 0 or -100
        st0 = model.backbone.stages[0].blocks[1].attn
        t['debug.attn_mask.stage0'] = ShiftWindowMSA.get_attn_mask(
            (8, 8), window_size=st0.window_size, shift_size=st0.shift_size)
    elif name == 'mixmim_tiny':
        m1, m2, m3, m4 = rec.one('masks')
        t['mask_s1'], t['mask_s2'], t['mask_s3'], t['mask_s4'] = m1, m2, m3, m4
        t['debug.patch_embed'] = rec.one('debug.patch_embed')
        t['debug.mixed_embed'] = rec.one('debug.mixed_embed')
        for i in range(4):
            t[f'debug.layer{i}.out'] = rec.one(f'debug.layer{i}.out')
        lat, mask = rec.one('backbone')
        assert torch.equal(mask, m4)
        t['latent'] = lat
        # the decoder output x_rec (2B,4,3072) is not stored (size): only
        # its loss-relevant half, unmixed exactly as MixMIMPretrainHead does
        # (x1 at the tokens taken from the flipped image, x2 elsewhere)
        x_rec = rec.one('x_rec')
        B = x_rec.shape[0] // 2
        t['pred'] = x_rec[:B] * m4 + x_rec[B:].flip(0) * (1 - m4)
    return t


def plain_checks(name, model, t, inputs, batch, loss):
    """Re-derive the targets and the loss in plain torch."""
    if name == 'maskfeat_tiny':
        mask = torch.stack([torch.as_tensor(m) for m in batch.masks])
        mask = mask.flatten(1).bool()
        ref_t = hog_forward_any_dtype(
            copy.deepcopy(model.target_generator), inputs.clone())
        assert torch.equal(ref_t, t['target'])
        err = ((t['pred'][:, 1:] - t['target'])**2).mean(-1)
        ref = (err * mask).sum() / mask.sum()
        assert torch.allclose(ref, loss, rtol=1e-6, atol=0), (ref, loss)
        assert int(mask.sum()) == BATCH * batch.mask_cfg['num_masking_patches']
    elif name == 'pixmim_tiny':
        _, lf = lowfreq_manual(model.target_generator, inputs)
        assert torch.equal(lf, t['target_lowfreq'])
        err = ((t['pred'] - t['target'])**2).mean(-1)
        ref = (err * t['mask']).sum() / t['mask'].sum()
        assert torch.allclose(ref, loss, rtol=1e-6, atol=0), (ref, loss)
        # the mask and ids_restore follow from the noise alone
        ids_shuffle = torch.argsort(batch.noise, dim=1)
        assert torch.equal(t['ids_restore'], torch.argsort(ids_shuffle, 1))
    elif name == 'simmim_tiny':
        mask = torch.stack([torch.as_tensor(m) for m in batch.masks])
        m = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1)
        ref = ((inputs - t['rec']).abs() * m).sum() / (m.sum() + 1e-5) / 3
        assert torch.allclose(ref, loss, rtol=1e-6, atol=0), (ref, loss)
        # mask-token mixing
        w = mask.flatten(1).unsqueeze(-1).float()
        mt = model.backbone.mask_token.detach()
        mixed = t['debug.patch_embed'] * (1. - w) + mt * w
        assert torch.equal(mixed, t['debug.masked_embed'])
    elif name == 'mixmim_tiny':
        m4 = t['mask_s4']
        assert int(m4.sum()) == 2 and m4.shape == (1, 4, 1)
        # masks at every scale: nearest upsampling of the 2x2 mask
        grid = m4.view(1, 2, 2)
        for k, s in (('mask_s1', 8), ('mask_s2', 4), ('mask_s3', 2)):
            up = grid.repeat_interleave(s, 1).repeat_interleave(s, 2)
            assert torch.equal(up.reshape(1, -1, 1), t[k]), k
        # top-k of the noise -> 1 (taken from the flipped batch)
        top = torch.argsort(batch.noise, dim=2)[:, :, :2]
        ref_m = torch.zeros(1, 1, 4).scatter_(2, top, 1).reshape(1, 4, 1)
        assert torch.equal(ref_m, m4)
        pe, m1 = t['debug.patch_embed'], t['mask_s1']
        mixed = pe * (1. - m1) + pe.flip(0) * m1
        bb = model.backbone
        assert torch.equal(mixed + bb.absolute_pos_embed.detach(),
                           t['debug.mixed_embed'])
        target = model.head.construct_target(inputs)
        ref = ((t['pred'] - target)**2).mean(-1).mean()
        assert torch.allclose(ref, loss, rtol=1e-6, atol=0), (ref, loss)


def structural_checks(name, model, t):
    if name == 'simmim_tiny':
        bb = model.backbone
        x = t['debug.stage0.out']  # stage 1 input, 4x4 map
        blk = bb.stages[1].blocks[1]
        assert blk.attn.shift_size == 2 and blk.attn.window_size == 4
        # stage 1: map 4x4 == window 4 -> shift switched off at run time
        b0 = copy.deepcopy(blk).eval()
        b1 = copy.deepcopy(blk).eval()
        b1.attn.shift_size = 0
        with torch.no_grad():
            y = bb.stages[1].blocks[0](x, (4, 4))
            assert torch.equal(b0(y, (4, 4)), b1(y, (4, 4)))
        # stage 0: map 8x8, window 4 -> shift 2 is active
        blk = bb.stages[0].blocks[1]
        assert blk.attn.shift_size == 2
        b1 = copy.deepcopy(blk).eval()
        b1.attn.shift_size = 0
        with torch.no_grad():
            x0 = t['debug.masked_embed']
            y0 = bb.stages[0].blocks[0](x0, (8, 8))
            assert not torch.allclose(blk(y0, (8, 8)), b1(y0, (8, 8)),
                                      atol=1e-4)


# ----------------------------------------------------------- one step
def train_iteration(model, ow, batch, rec=None, hub=None, clip=False,
                    frozen_prefix=None, expected_draws=None):
    """BaseModel.train_step, with the gradients recorded between backward
    and step. ``frozen_prefix``: parameters that require grad but never get
    one (a tokenizer or teacher the forward runs under ``torch.no_grad()``:
    DALL-E's and CLIP's ``nn.Parameter`` s). ``expected_draws``: how many
    injected draws the forward makes (default: one with ``batch.noise``)."""
    data = batch.data()
    uni = RecordUniform()
    with batch.inject() as inj, uni:
        with ow.optim_context(model):
            d = model.data_preprocessor(data, True)
            losses = model._run_forward(d, mode='loss')
    expected = expected_draws
    if expected is None:
        expected = 0 if batch.noise is None else 1
    assert inj.calls == expected, (inj.calls, expected)
    parsed, _ = model.parse_losses(losses)
    ow.backward(parsed)
    grads = {}
    for k, p in model.named_parameters():
        if frozen_prefix is not None and k.startswith(frozen_prefix):
            assert p.grad is None, k
        elif p.requires_grad:
            assert p.grad is not None, k
            grads[k] = p.grad.detach().clone()
        else:
            assert p.grad is None, k
    ow.step()
    gnorm = None
    if clip:
        gnorm = hub.get_scalar('train/grad_norm').current()
    ow.zero_grad()
    return dict(
        losses={k: v.detach().clone() for k, v in losses.items()},
        parsed=parsed.detach().clone(),
        grads=grads,
        grad_norm=gnorm,
        inputs=d[0][0].detach().clone(),
        uniform=uni.calls)


def total_grad_norm(model, ow, grads):
    """What clip_grad_norm_ computed: the 2-norm of the per-tensor 2-norms,
    over the optimiser's parameters in group order."""
    pid = {id(p): k for k, p in model.named_parameters()}
    order = [
        pid[id(p)] for g in ow.optimizer.param_groups for p in g['params']
        if pid[id(p)] in grads
    ]
    return torch.nn.utils.get_total_norm([grads[k] for k in order], 2.0)


def eval_features(name, model0, batch, eval_noise):
    """Tensor-mode features of the initial model in eval mode."""
    m = copy.deepcopy(model0).eval()
    t = {}
    with torch.no_grad():
        if name == 'maskfeat_tiny':
            # mode='tensor' -> extract_feat(compute_hog=True): batch size 1
            # only; also sets model.target (the HOG picture, float64)
            one = Batch(batch.images[:1], masks=batch.masks[:1])
            d = m.data_preprocessor(one.data(), False)
            t['feat_eval'] = m._run_forward(d, mode='tensor')
            img = m.target
            assert img.shape == (1, 3, 112, 112) and img.dtype == torch.float64
            assert torch.equal(img[0, 0], img[0, 1])
            t['feat_eval.hog_image'] = hog_image_u8(img[0, 0].numpy())
        elif name == 'simmim_tiny':
            d = m.data_preprocessor(batch.data(), False)
            t['feat_eval'] = m._run_forward(d, mode='tensor')
        elif name == 'pixmim_tiny':
            d = m.data_preprocessor(batch.data(), False)
            with InjectRand(eval_noise) as inj:
                t['feat_eval'] = m._run_forward(d, mode='tensor')
            assert inj.calls == 1
        elif name == 'mixmim_tiny':
            d = m.data_preprocessor(batch.data(), False)
            try:
                m._run_forward(d, mode='tensor')
                raise AssertionError('MixMIM mode=tensor unexpectedly works')
            except TypeError as e:
                # BaseModel.extract_feat(self, inputs) has no data_samples
                # parameter, and MixMIM does not override it
                assert 'data_samples' in str(e), e
            with InjectRand(eval_noise) as inj:
                lat, mask = m.backbone(d[0][0])
            assert inj.calls == 1
            t['feat_eval.latent'] = lat
            t['feat_eval.mask_s4'] = mask
    return t


# ----------------------------------------------------------- float64
ERROR2_PREFIXES = ('loss', 'grad', 'grad_norm', 'iter1', 'loss2', 'grad2',
                   'grad_norm2', 'iter2')


def float64_run(name, model0, optim_cfg, batches, clip):
    m = copy.deepcopy(model0).double()
    if name == 'maskfeat_tiny':
        # float64 run only: the reference allocates the histogram as float32
        tg = m.target_generator
        tg.forward = lambda x: hog_forward_any_dtype(tg, x)
    ow = build_optim_wrapper(m, copy.deepcopy(optim_cfg))
    hub = MessageHub.get_current_instance()
    f64 = {}
    for it, batch in enumerate(batches, start=1):
        sfx = '' if it == 1 else '2'
        r = train_iteration(m, ow, batch, hub=hub, clip=clip)
        for k, v in r['losses'].items():
            f64[f'loss{sfx}.{k}'] = v.reshape(1)
        f64[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        for k, v in r['grads'].items():
            f64[f'grad{sfx}.{k}'] = v
        if clip:
            f64[f'grad_norm{sfx}'] = total_grad_norm(m, ow,
                                                     r['grads']).reshape(1)
        for k, v in clone_sd(m).items():
            f64[f'iter{it}.{k}'] = v
    return f64


def float32_error2(f64, tensors32):
    res = {p: {} for p in ERROR2_PREFIXES}
    for key, v64 in f64.items():
        if not v64.dtype.is_floating_point:
            continue
        pre, _, k = key.partition('.')
        if pre.endswith('_total'):
            pre, k = pre[:-len('_total')], 'total'
        v32 = tensors32[key]
        assert v32.shape == v64.shape, (key, v32.shape, v64.shape)
        r, err, scale = rel_err(v32, v64)
        assert np.isfinite(err) and np.isfinite(scale), key
        res[pre][k or '-'] = [sig4(r), sig4(err), sig4(scale)]
    return {p: dict(sorted(v.items())) for p, v in res.items() if v}


def write_float32_error2(path, err):
    lines = [
        '{', ' "note": ' + json.dumps(
            'float32 fixture vs the same two iterations in float64 from '
            'model.pth (same data, masks and noise; same optim_wrapper, '
            'clipping included): per tensor [rel, abs, scale] with abs = '
            'max|f32 - f64|, scale = max|f64|, rel = abs / max(scale, '
            '1e-30); 4 significant digits; integer entries left out') + ','
    ]
    pres = list(err)
    for i, pre in enumerate(pres):
        items = [f'  {json.dumps(k)}: {json.dumps(v)}'
                 for k, v in err[pre].items()]
        lines.append(f' {json.dumps(pre)}: {{')
        lines.append(',\n'.join(items))
        lines.append(' }' + (',' if i + 1 < len(pres) else ''))
    lines.append('}')
    text = '\n'.join(lines) + '\n'
    json.loads(text)
    with open(path, 'w') as f:
        f.write(text)


def error_summary(err):
    out = {}
    for pre, items in err.items():
        # analytically zero tensors (max|f64| < 1e-10) have a meaningless rel
        cand = [(v[0], k) for k, v in items.items() if v[2] >= 1e-10]
        if cand:
            r, k = max(cand)
            out[pre] = [r, k]
    return out


# ----------------------------------------------------------- a case
def run_case(name, case, out_dir, hog_gen):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = case['cfg']()
    seeds = seeds_of(case)
    optim_cfg, real_ow = real_optim_wrapper(case['optim'])
    clip = 'clip_grad' in optim_cfg
    hub = MessageHub.get_current_instance()

    model = build_model(cfg, seeds['init_seed'])
    init_sd = clone_sd(model)
    torch.save({
        'meta': meta_of(name, seeds['init_seed']),
        'state_dict': model.state_dict()
    }, os.path.join(d, 'model.pth'))
    keys = keys_entries(model)
    write_lines_json(os.path.join(d, 'keys.json'), keys)
    model0 = copy.deepcopy(model)

    batch1 = make_batch(name, cfg, seeds['data_seed'], seeds['draw_seed'],
                        hog_gen)
    batch2 = make_batch(name, cfg, seeds['data2_seed'], seeds['draw2_seed'],
                        hog_gen)
    eval_noise = None
    if batch1.noise is not None:
        g = torch.Generator().manual_seed(seeds['eval_draw_seed'])
        eval_noise = torch.rand(batch1.noise.shape, generator=g)

    # ---- features of the initial model (eval mode, deep copies)
    feats = eval_features(name, model0, batch1, eval_noise)

    # ---- optimiser, then iteration 1 (recorded) and iteration 2
    ow = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    pgroups = param_groups_of(model, ow)
    write_json(os.path.join(d, 'param_groups.json'), pgroups)
    rec = Recorder()
    install_recorders(name, model, rec)
    try:
        r1 = train_iteration(model, ow, batch1, hub=hub, clip=clip)
    finally:
        rec.close()
    inter = intermediates(name, model0, rec, r1['inputs'])
    plain_checks(name, model0, inter, r1['inputs'], batch1, r1['parsed'])
    structural_checks(name, model0, inter)
    iter1 = clone_sd(model)
    r2 = train_iteration(model, ow, batch2, hub=hub, clip=clip)
    iter2 = clone_sd(model)
    if name == 'mixmim_tiny':
        for r in (r1, r2):
            assert r['uniform'] == [(0.0, 0.0, 0.0)], r['uniform']
    else:
        assert r1['uniform'] == [] and r2['uniform'] == []
    for r in (r1, r2):
        if clip:
            ref = total_grad_norm(model, ow, r['grads'])
            assert float(ref) == r['grad_norm'], (float(ref), r['grad_norm'])
            r['grad_norm_t'] = ref

    # ---- tensors
    t = {}
    if name == 'maskfeat_tiny':
        t['inputs'] = batch1.f16
        t['inputs2'] = batch2.f16
        assert torch.equal(r1['inputs'], batch1.f16.float())
        assert torch.equal(r2['inputs'], batch2.f16.float())
    else:
        t['raw'] = batch1.images
        t['inputs'] = r1['inputs']
        t['raw2'] = batch2.images
    if batch1.masks is not None:
        t['mask'] = torch.stack([torch.as_tensor(m) for m in batch1.masks])
        t['mask2'] = torch.stack([torch.as_tensor(m) for m in batch2.masks])
    if batch1.noise is not None:
        t['noise'] = batch1.noise
        t['noise2'] = batch2.noise
        t['noise_eval'] = eval_noise
    t.update(inter)
    if name == 'maskfeat_tiny':
        t['target2'] = copy.deepcopy(model0.target_generator)(r2['inputs'])
    elif name == 'pixmim_tiny':
        t['target_lowfreq2'] = copy.deepcopy(model0.target_generator)(
            r2['inputs'])
    t.update(feats)
    for sfx, r in (('', r1), ('2', r2)):
        for k, v in r['losses'].items():
            t[f'loss{sfx}.{k}'] = v.reshape(1)
        t[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        if clip:
            t[f'grad_norm{sfx}'] = r['grad_norm_t'].reshape(1)
        for k, v in r['grads'].items():
            t[f'grad{sfx}.{k}'] = v
        for k, v in (iter1 if sfx == '' else iter2).items():
            t[f'iter{1 if sfx == "" else 2}.{k}'] = v
    tensors = {k: stored(v) for k, v in t.items()}
    save_io(os.path.join(d, 'io.safetensors'), tensors, name)

    # ---- float64 rerun of both iterations
    f64 = float64_run(name, model0, optim_cfg, [batch1, batch2], clip)
    err2 = float32_error2(f64, tensors)
    write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    # ---- config.json
    cfg_json = jsonable(copy.deepcopy(cfg))
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = jsonable(optim_cfg)
    cfg_json['optim_wrapper_real'] = jsonable(real_ow)
    cfg_json['seeds'] = seeds
    fixture = dict(
        lr_note='lr 1e-3 constant (no param_scheduler); AdamW',
        clip_grad_active=None if not clip else [
            bool(float(r1['grad_norm_t']) > optim_cfg['clip_grad']
                 ['max_norm']),
            bool(float(r2['grad_norm_t']) > optim_cfg['clip_grad']
                 ['max_norm'])
        ])
    if name == 'maskfeat_tiny':
        fixture['inputs'] = dict(
            note='randn rounded to float16 and repaired away from HOG bin '
            'ties (tools/README.md); stored as F16; the identity data '
            'preprocessor passes them to loss() unchanged',
            tie_margin=TIE_MARGIN,
            batch1=batch1.hog_info,
            batch2=batch2.hog_info)
        fixture['mask_generator'] = dict(type='BEiTMaskGenerator',
                                         **batch1.mask_cfg)
    if name == 'simmim_tiny':
        fixture['mask_generator'] = dict(type='SimMIMMaskGenerator',
                                         **batch1.mask_cfg)
    cfg_json['fixture'] = fixture
    cfg_json['float32_error'] = error_summary(err2)
    write_json(os.path.join(d, 'config.json'), cfg_json)

    # ================= validation ==========================================
    ckpt = torch.load(
        os.path.join(d, 'model.pth'), map_location='cpu', weights_only=True)

    def fresh(extra):
        m = build_model(cfg, seeds['init_seed'] + extra)
        res = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not res.missing_keys and not res.unexpected_keys
        for k, v in m.state_dict().items():
            assert torch.equal(v, init_sd[k]), (name, k)
        return m

    # replay A: mmengine's train_step, nothing patched, two iterations
    m2 = fresh(999)
    ow2 = build_optim_wrapper(m2, copy.deepcopy(optim_cfg))
    assert param_groups_of(m2, ow2) == pgroups
    for it, (batch, seed, r, state) in enumerate(
        ((batch1, seeds['draw_seed'], r1, iter1),
         (batch2, seeds['draw2_seed'], r2, iter2)), start=1):
        batch.seed_rng(seed)
        log = m2.train_step(batch.data(), ow2)
        assert torch.equal(log['loss'].detach(), r['parsed']), (name, it)
        sd2 = m2.state_dict()
        assert list(sd2) == list(state)
        for k, v in sd2.items():
            assert torch.equal(v, state[k]), (name, 'replay A', it, k)
        if clip:
            assert hub.get_scalar('train/grad_norm').current() == \
                r['grad_norm'], (name, it)

    # replay B: by hand, every loss entry and gradient
    m3 = fresh(555)
    ow3 = build_optim_wrapper(m3, copy.deepcopy(optim_cfg))
    for it, (batch, r) in enumerate(((batch1, r1), (batch2, r2)), start=1):
        q = train_iteration(m3, ow3, batch, hub=hub, clip=clip)
        for k, v in q['losses'].items():
            assert torch.equal(v, r['losses'][k]), (name, it, k)
        assert set(q['grads']) == set(r['grads'])
        for k, v in q['grads'].items():
            assert torch.equal(v, r['grads'][k]), (name, 'grad', it, k)
    for k, v in m3.state_dict().items():
        assert torch.equal(v, iter2[k]), (name, 'replay B', k)
    # features again, from the reloaded weights
    f3 = eval_features(name, fresh(77), batch1, eval_noise)
    for k, v in f3.items():
        assert torch.equal(stored(v), tensors[k]), (name, k)

    return dict(
        case=name,
        loss=float(r1['parsed']),
        loss2=float(r2['parsed']),
        grad_norm=None if not clip else
        [float(r1['grad_norm_t']), float(r2['grad_norm_t'])],
        clip=fixture['clip_grad_active'],
        tensors=tensors,
        pgroups=pgroups,
        n_state=sum(v.numel() for v in init_sd.values()),
        f32err=cfg_json['float32_error'],
        dir=d)


# ================================================================ full keys
FULL_CONFIGS = [
    SIMMIM_B_100E_CFG,
    SIMMIM_L_CFG,
    MASKFEAT_CFG,
    PIXMIM_CFG,
    MIXMIM_CFG,
]


def build_keys_only(cfg):
    """The model on the meta device (no memory, no init); mmcls Swin calls
    .item() on a torch.linspace, so torch.linspace is pointed at the CPU
    while the model is built (shapes are unaffected)."""
    orig = torch.linspace

    def linspace_cpu(*a, **k):
        k['device'] = 'cpu'
        return orig(*a, **k)

    torch.linspace = linspace_cpu
    try:
        with torch.device('meta'):
            return MODELS.build(cfg.model)
    finally:
        torch.linspace = orig


def full_model_keys(out_dir, configs=None, filename='mim_keys.json'):
    """The full-size ``state_dict`` inventories of ``configs`` (default:
    ``FULL_CONFIGS``), written to ``out_dir/filename``."""
    res = {}
    for rel in configs or FULL_CONFIGS:
        cfg = Config.fromfile(cfg_path(rel))
        model = build_keys_only(cfg)
        pn = dict(model.named_parameters())
        sd = model.state_dict()
        name = os.path.splitext(os.path.basename(rel))[0]
        res[name] = dict(
            config=rel,
            num_state_dict_elements=int(sum(v.numel() for v in sd.values())),
            num_trainable_params=int(
                sum(p.numel() for p in pn.values() if p.requires_grad)),
            keys=[[
                k, list(v.shape),
                str(v.dtype).replace('torch.', ''), k in pn,
                bool(k in pn and pn[k].requires_grad)
            ] for k, v in sd.items()])
        del model
    path = os.path.join(out_dir, filename)
    lines = ['{', ' "note": ' + json.dumps(
        'state_dict of the full-size models the real configs build (meta '
        'device): per config, keys as [key, shape, dtype, is_parameter, '
        'requires_grad] in state_dict order') + ',']
    names = list(res)
    for i, n in enumerate(names):
        r = res[n]
        lines.append(f' {json.dumps(n)}: {{')
        for f in ('config', 'num_state_dict_elements',
                  'num_trainable_params'):
            lines.append(f'  {json.dumps(f)}: {json.dumps(r[f])},')
        lines.append('  "keys": [')
        lines.append(',\n'.join(
            '   ' + json.dumps(e, separators=(',', ':')) for e in r['keys']))
        lines.append('  ]')
        lines.append(' }' + (',' if i + 1 < len(names) else ''))
    lines.append('}')
    text = '\n'.join(lines) + '\n'
    json.loads(text)
    with open(path, 'w') as f:
        f.write(text)
    return res, len(text)


# ================================================================ main
def setup_reference(out_dir):
    """What every fixture generator does first: one float32 thread, the
    registry, quiet MMEngine loggers, the output folder."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='ERROR')
    MMLogger.get_current_instance().setLevel('ERROR')
    os.makedirs(out_dir, exist_ok=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument(
        '--list', action='store_true', help='print every tensor name')
    ap.add_argument('--cases', nargs='*', default=None)
    ap.add_argument(
        '--no-keys', action='store_true', help='skip mim_keys.json')
    args = ap.parse_args()

    t0 = time.monotonic()
    setup_reference(args.out)

    names = args.cases or (TARGET_CASES + list(CASES))
    hog_gen = MODELS.build(ConfigDict(copy.deepcopy(HOG_CFG)))
    results = []
    timing = {}
    for n in names:
        t1 = time.monotonic()
        if n == 'hog_tiny':
            results.append(run_hog(args.out))
        elif n == 'lowfreq_tiny':
            results.append(run_lowfreq(args.out))
        else:
            results.append(run_case(n, CASES[n], args.out, hog_gen))
        timing[n] = time.monotonic() - t1
    nbytes = 0
    if not args.no_keys:
        t1 = time.monotonic()
        keys, nbytes = full_model_keys(args.out)
        timing['mim_keys.json'] = time.monotonic() - t1

    print()
    total = nbytes
    for r in results:
        sizes = {
            f: os.path.getsize(os.path.join(r['dir'], f))
            for f in sorted(os.listdir(r['dir']))
        }
        total += sum(sizes.values())
        extra = ''
        if 'loss' in r:
            extra = (f' loss={r["loss"]:.8f} loss2={r["loss2"]:.8f} '
                     f'grad_norm={r["grad_norm"]} clipped={r["clip"]} '
                     f'state_elems={r["n_state"]}')
        print(f'{r["case"]:<14} {timing[r["case"]]:5.1f} s '
              f'tensors={len(r["tensors"])} bytes={sum(sizes.values())} '
              f'{sizes}{extra}')
    for r in results:
        if 'f32err' in r:
            print(f'{r["case"]:<14} f32 vs f64: ' + ' '.join(
                f'{p} {v[0]:.1e}' for p, v in r['f32err'].items()))
    if not args.no_keys:
        print(f'mim_keys.json: {nbytes} bytes, {timing["mim_keys.json"]:.1f} '
              f's: ' + ', '.join(
                  f'{k} {len(v["keys"])} keys '
                  f'{v["num_state_dict_elements"]} elements'
                  for k, v in keys.items()))
    print(f'total bytes written: {total}; {time.monotonic() - t0:.1f} s')
    if args.list:
        for r in results:
            print(f'\n== {r["case"]}/io.safetensors')
            for k, v in r['tensors'].items():
                print(f'  {k:<72} {str(v.dtype):<14} {list(v.shape)}')
            if 'pgroups' in r:
                print(f'== {r["case"]} param groups')
                for k, v in r['pgroups'].items():
                    print(f'  {k:<72} {v}')
    print('all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
