#!/usr/bin/env python
"""Generate golden fixtures for MILAN and EVA from the REAL MMSelfSup 1.0.0.

    .venv-reference/bin/python tools/gen_fixtures_milan_eva.py --out tests/fixtures [--cases milan_tiny ...] [--list] [--no-keys]

Both algorithms predict the features of a frozen CLIP image tower
(``CLIPGenerator``: ``build_clip_model`` on the file its ``tokenizer_path``
names, OpenAI's layout). The fixtures use a tiny CLIP saved by this script in
that layout, ``milan_tiny/clip_tiny.pth`` (a plain dict of tensors, as
``build_clip_model`` takes it, with OpenAI's 0-d int64 ``input_resolution``,
``context_length`` and ``vocab_size`` entries, which it deletes): vision
width 64 (one head: MMSelfSup's CLIP has ``width // 64`` heads), one layer,
patch 4, 16-pixel images, ``embed_dim`` 8; text width 64, one layer, context
2, vocabulary 4. Both cases load that one file.

Two cases, each built by the real registry from a plain dict whose fields are
the real config's except the sizes:

- ``milan_tiny``: ``MILAN`` with ``MILANViT`` (2 layers, width 16, 16-pixel
  images, patch 4, mask ratio 0.75: 4 of 16 patches kept),
  ``MILANPretrainDecoder`` (2 prompt layers, width 16,
  ``predict_feature_dim`` 8) and ``MILANPretrainHead`` with the config's
  ``CosineSimilarityLoss(shift_factor=2, scale_factor=2)`` over every token.
  The masking draws ``torch.multinomial(importance, 16, replacement=False)``
  (``importance``: CLIP's last-layer attention of the cls token to each
  patch); the global torch generator is seeded with the batch's draw seed
  before the forward and the output is recorded (``ids_shuffle``,
  ``ids_shuffle2``) and replayed in the float64 run.
- ``eva_tiny``: ``EVA`` with ``MAEViT`` (same sizes), ``MAEPretrainDecoder``
  (2 layers, width 16, ``predict_feature_dim`` 8) and ``MILANPretrainHead``,
  the loss over the masked patches against CLIP's patch features. MAE's
  ``torch.rand(B, L)`` masking noise is injected from ``noise``/``noise2``.

For each: ``model.pth`` (``{'meta', 'state_dict'}``, the CLIP included under
``target_generator.tokenizer.*``), ``keys.json``, ``param_groups.json``,
``config.json`` (the model dict with ``tokenizer_path`` relative to the
fixtures folder and, for selfsup, the CLIP's ``arch`` in
``build_clip_model``'s argument names, the fixture's ``optim_wrapper``: the real config's with
``OptimWrapper`` and lr 1e-3, ``paramwise_cfg`` verbatim; the configs have no
``clip_grad``), and ``io.safetensors``: the raw BGR batches (``raw``,
``raw2``), the preprocessed inputs (``inputs``, ``inputs2``), the draws, CLIP's
features and attention (``clip_feat``, ``clip_attn`` and ``clip_feat2``,
``clip_attn2``), MILAN's ``importance`` (``clip_attn[:, 0, 1:]``), the
backbone's outputs (``latent``, ``ids_restore``, ``ids_keep``, ``ids_dump``
for MILAN; ``latent``, ``mask``, ``ids_restore`` for EVA), the decoder's
prediction (``pred``), every loss, every gradient and the whole
``state_dict`` after each iteration (``iter1.*``, ``iter2.*``) except the
frozen CLIP's ``target_generator.*`` entries, which are asserted unchanged
and recorded once, in ``model.pth``.
``float32_error2.json`` holds how far each float32 tensor is from the same
two iterations in float64 (the CLIP's float32-casting LayerNorm runs in the
input's dtype there; the multinomial indices and MAE noise are replayed).

Each run validates itself: replaying both iterations with mmengine's own
``train_step`` from ``model.pth``, with nothing patched and only the torch
generator seeded, gives bit-identical losses and states; the losses, the
masking indices and the importance are re-derived in plain torch.

It also writes ``milan_eva_keys.json``: the state_dict inventories of the
full-size MILAN and EVA configs, the ViT-B/16 CLIP included (its checkpoint
is a URL, so ``_load_checkpoint`` is pointed at a meta-device state_dict of
OpenAI's ViT-B/16 shapes).
"""
import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_fixtures_mim as base  # noqa: E402  (pins the CPU kernels first)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmselfsup.models.target_generators import clip_generator  # noqa: E402
from mmselfsup.models.utils import clip as clip_utils  # noqa: E402

GENERATOR = 'tools/gen_fixtures_milan_eva.py'
MILAN_CFG = 'milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k.py'
EVA_CFG = 'eva/eva-mae-style_vit-base-p16_16xb256-coslr-400e_in1k.py'
BATCH = 2
IMG = 16
PATCH = 4
L = (IMG // PATCH)**2
TINY_ARCH = dict(
    embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)
CLIP_FILE = 'milan_tiny/clip_tiny.pth'  # relative to the fixtures folder
CLIP_SEED = 3301
CLIP_TINY = dict(
    embed_dim=8, image_resolution=IMG, vision_layers=1, vision_width=64,
    vision_patch_size=PATCH, context_length=2, vocab_size=4,
    transformer_width=64, transformer_heads=1, transformer_layers=1)
CLIP_VIT_B16 = dict(
    embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
    vision_patch_size=16, context_length=77, vocab_size=49408,
    transformer_width=512, transformer_heads=8, transformer_layers=12)


def clip_state(arch):
    """A CLIP's state_dict in OpenAI's layout, with the three int entries
    OpenAI's JIT checkpoints carry (``build_clip_model`` drops them)."""
    model = clip_utils.CLIP(**arch)
    sd = dict(model.state_dict())
    res = arch['image_resolution']
    for k, v in (('input_resolution', res),
                 ('context_length', arch['context_length']),
                 ('vocab_size', arch['vocab_size'])):
        sd[k] = torch.tensor(v, dtype=torch.int64)
    return sd


def write_clip(out_dir):
    path = os.path.join(out_dir, CLIP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    base.seed_all(CLIP_SEED)
    torch.save(clip_state(CLIP_TINY), path)
    return path


def real_model(rel):
    return Config.fromfile(base.cfg_path(rel)).model.to_dict()


def cfg_milan(clip_path):
    real = real_model(MILAN_CFG)
    bb, nk = real['backbone'], real['neck']
    return dict(
        type='MILAN',
        data_preprocessor=copy.deepcopy(real['data_preprocessor']),
        backbone=dict(
            type='MILANViT', arch=TINY_ARCH, img_size=IMG, patch_size=PATCH,
            mask_ratio=bb['mask_ratio'], init_cfg=copy.deepcopy(bb['init_cfg'])),
        neck=dict(
            type='MILANPretrainDecoder', num_patches=L, patch_size=PATCH,
            in_chans=3, embed_dim=16, decoder_embed_dim=16, decoder_depth=2,
            decoder_num_heads=2, predict_feature_dim=CLIP_TINY['embed_dim'],
            mlp_ratio=nk['mlp_ratio'], init_cfg=copy.deepcopy(nk['init_cfg'])),
        head=copy.deepcopy(real['head']),
        target_generator=dict(type='CLIPGenerator', tokenizer_path=clip_path),
        init_cfg=real['init_cfg'])


def cfg_eva(clip_path):
    real = real_model(EVA_CFG)
    bb, nk = real['backbone'], real['neck']
    return dict(
        type='EVA',
        data_preprocessor=copy.deepcopy(real['data_preprocessor']),
        backbone=dict(
            type='MAEViT', arch=TINY_ARCH, img_size=IMG, patch_size=PATCH,
            mask_ratio=bb['mask_ratio'], init_cfg=copy.deepcopy(bb['init_cfg'])),
        neck=dict(
            type='MAEPretrainDecoder', num_patches=L, patch_size=PATCH,
            in_chans=3, embed_dim=16, decoder_embed_dim=16, decoder_depth=2,
            decoder_num_heads=2, mlp_ratio=nk['mlp_ratio'],
            predict_feature_dim=CLIP_TINY['embed_dim'],
            init_cfg=copy.deepcopy(nk['init_cfg'])),
        head=copy.deepcopy(real['head']),
        target_generator=dict(type='CLIPGenerator', tokenizer_path=clip_path),
        init_cfg=real['init_cfg'])


CASES = {
    'milan_tiny': dict(cfg=cfg_milan, optim=MILAN_CFG, seed=3401),
    'eva_tiny': dict(cfg=cfg_eva, optim=EVA_CFG, seed=3501),
}


# ----------------------------------------------------------- draws
class RecordMultinomial:
    """Seeds the global torch generator with the batch's draw seed (what
    replay A does before ``train_step``) and records what the one
    ``torch.multinomial`` call of the forward returns."""

    def __init__(self, batch):
        self.batch = batch
        self.calls = 0

    def __enter__(self):
        torch.manual_seed(self.batch.draw_seed)
        self._orig = torch.multinomial

        def wrapped(weights, n, replacement=False, **kw):
            out = self._orig(weights, n, replacement, **kw)
            assert not replacement and n == weights.shape[-1], (n, replacement)
            self.calls += 1
            self.batch.ids_shuffle = out.detach().clone()
            self.batch.importance_seen = weights.detach().clone()
            return out

        torch.multinomial = wrapped
        return self

    def __exit__(self, *a):
        torch.multinomial = self._orig


class InjectMultinomial:
    """Returns the recorded indices from the forward's ``torch.multinomial``
    (the float64 run, whose weights differ in the last bits)."""

    def __init__(self, ids):
        self.ids = ids
        self.calls = 0

    def __enter__(self):
        self._orig = torch.multinomial

        def fake(weights, n, replacement=False, **kw):
            assert not replacement and tuple(weights.shape) == tuple(
                self.ids.shape) and n == self.ids.shape[1]
            self.calls += 1
            return self.ids.clone()

        torch.multinomial = fake
        return self

    def __exit__(self, *a):
        torch.multinomial = self._orig


class Batch:
    """One iteration's images (uint8 BGR) and draws: MILAN's multinomial
    (recorded on first use, then replayed) or EVA's MAE noise."""

    def __init__(self, name, images, draw_seed):
        self.name = name
        self.images = images
        self.draw_seed = draw_seed
        self.ids_shuffle = None
        self.noise = None
        if name == 'eva_tiny':
            g = torch.Generator().manual_seed(draw_seed)
            self.noise = torch.rand(BATCH, L, generator=g)

    def data(self):
        return base.make_data(self.images)

    def inject(self):
        if self.noise is not None:
            return base.InjectRand(self.noise)
        if self.ids_shuffle is None:
            return RecordMultinomial(self)
        return InjectMultinomial(self.ids_shuffle)

    def seed_rng(self):
        torch.manual_seed(self.draw_seed)


def train_iteration(model, ow, batch, hub=None, clip=False):
    """``BaseModel.train_step`` with the gradients recorded between backward
    and step, one injected draw per forward (MILAN's multinomial, EVA's MAE
    noise). CLIP's parameters are ``nn.Parameter`` s that require grad, but
    ``CLIPGenerator.forward`` runs under ``torch.no_grad()``, so they never
    get one (and AdamW skips them)."""
    return base.train_iteration(model, ow, batch, hub=hub, clip=clip,
                                frozen_prefix='target_generator.',
                                expected_draws=1)


# ----------------------------------------------------------- records
def install_recorders(model, rec):
    rec.out(model.target_generator, 'clip')
    rec.out(model.backbone, 'backbone')
    rec.out(model.neck, 'pred')


def intermediates(name, rec):
    feat, attn = rec.one('clip')
    t = {'clip_feat': feat, 'clip_attn': attn, 'pred': rec.one('pred')}
    outs = rec.one('backbone')
    if name == 'milan_tiny':
        t['importance'] = attn[:, 0, 1:]
        t['latent'], t['ids_restore'], t['ids_keep'], t['ids_dump'] = outs
    else:
        t['latent'], t['mask'], t['ids_restore'] = outs
    return t


def cosine_loss(pred, target, mask=None):
    cos = (F.normalize(pred, dim=-1) * F.normalize(target, dim=-1)).sum(-1)
    loss = 2.0 - 2.0 * cos
    return loss.mean() if mask is None else (loss * mask).sum() / mask.sum()


def plain_checks(name, model0, t, inputs, batch, loss):
    """CLIP's outputs, the masking indices and the loss, re-derived."""
    tg = copy.deepcopy(model0.target_generator)
    with torch.no_grad():
        feat, attn = tg.tokenizer.visual(inputs)
    assert torch.equal(feat, t['clip_feat']) and torch.equal(attn, t['clip_attn'])
    assert t['clip_feat'].shape == (BATCH, L + 1, CLIP_TINY['embed_dim'])
    assert t['clip_attn'].shape == (BATCH, L + 1, L + 1)
    # one head: the weights are a softmax per row
    assert torch.allclose(attn.sum(-1), torch.ones(BATCH, L + 1), atol=1e-6)
    keep = int(L * (1 - 0.75))
    if name == 'milan_tiny':
        assert torch.equal(batch.importance_seen, t['importance'])
        ids = batch.ids_shuffle
        assert torch.equal(t['ids_restore'], torch.argsort(ids, dim=1))
        assert torch.equal(t['ids_keep'], ids[:, :keep])
        assert torch.equal(t['ids_dump'], ids[:, keep:])
        assert t['latent'].shape == (BATCH, 1 + keep, 16)
        assert t['pred'].shape == (BATCH, L + 1, CLIP_TINY['embed_dim'])
        ref = cosine_loss(t['pred'], t['clip_feat'])
    else:
        ids_shuffle = torch.argsort(batch.noise, dim=1)
        assert torch.equal(t['ids_restore'], torch.argsort(ids_shuffle, dim=1))
        assert int(t['mask'].sum()) == BATCH * (L - keep)
        assert t['pred'].shape == (BATCH, L, CLIP_TINY['embed_dim'])
        ref = cosine_loss(t['pred'], t['clip_feat'][:, 1:], t['mask'])
    assert torch.allclose(ref, loss, rtol=1e-6, atol=0), (ref, loss)


# ----------------------------------------------------------- float64
def float64_model(model0):
    m = copy.deepcopy(model0).double()
    # CLIP's LayerNorm casts its input to float32 (an fp16 guard): run it in
    # the input's dtype instead (float64 run only)
    for mod in m.target_generator.modules():
        if isinstance(mod, clip_utils.LayerNorm):
            mod.forward = (lambda n: lambda x: torch.nn.LayerNorm.forward(n, x))(mod)
    return m


def float64_run(model0, optim_cfg, batches, clip):
    m = float64_model(model0)
    init_sd = base.clone_sd(model0)
    ow = build_optim_wrapper(m, copy.deepcopy(optim_cfg))
    hub = MessageHub.get_current_instance()
    f64 = {}
    for it, batch in enumerate(batches, start=1):
        sfx = '' if it == 1 else '2'
        r = train_iteration(m, ow, batch, hub=hub, clip=clip)
        for k, v in init_sd.items():
            if k.startswith('target_generator.'):
                assert torch.equal(m.state_dict()[k], v.double()), k
        for k, v in r['losses'].items():
            f64[f'loss{sfx}.{k}'] = v.reshape(1)
        f64[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        for k, v in r['grads'].items():
            f64[f'grad{sfx}.{k}'] = v
        if clip:
            f64[f'grad_norm{sfx}'] = base.total_grad_norm(m, ow, r['grads']).reshape(1)
        for k, v in base.clone_sd(m).items():
            if not k.startswith('target_generator.'):
                f64[f'iter{it}.{k}'] = v
    return f64


# ----------------------------------------------------------- a case
def run_case(name, case, out_dir, clip_path):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = case['cfg'](clip_path)
    seeds = base.seeds_of(case)
    optim_cfg, real_ow = base.real_optim_wrapper(case['optim'])
    clip = 'clip_grad' in optim_cfg
    hub = MessageHub.get_current_instance()

    model = base.build_model(cfg, seeds['init_seed'])
    init_sd = base.clone_sd(model)
    torch.save({
        'meta': dict(base.meta_of(name, seeds['init_seed']), generator=GENERATOR),
        'state_dict': model.state_dict()
    }, os.path.join(d, 'model.pth'))
    base.write_lines_json(os.path.join(d, 'keys.json'), base.keys_entries(model))
    model0 = copy.deepcopy(model)
    batch1 = Batch(name, base.raw_images((BATCH, 3, IMG, IMG), seeds['data_seed']),
                   seeds['draw_seed'])
    batch2 = Batch(name, base.raw_images((BATCH, 3, IMG, IMG), seeds['data2_seed']),
                   seeds['draw2_seed'])

    ow = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    pgroups = base.param_groups_of(model, ow)
    base.write_json(os.path.join(d, 'param_groups.json'), pgroups)
    rec = base.Recorder()
    install_recorders(model, rec)
    try:
        r1 = train_iteration(model, ow, batch1, hub=hub, clip=clip)
    finally:
        rec.close()
    inter = intermediates(name, rec)
    plain_checks(name, model0, inter, r1['inputs'], batch1, r1['parsed'])
    iter1 = base.clone_sd(model)
    rec2 = base.Recorder()
    rec2.out(model.target_generator, 'clip')
    try:
        r2 = train_iteration(model, ow, batch2, hub=hub, clip=clip)
    finally:
        rec2.close()
    iter2 = base.clone_sd(model)
    for k, v in init_sd.items():
        if k.startswith('target_generator.'):
            assert torch.equal(iter2[k], v), k  # frozen
    for r in (r1, r2):
        if clip:
            r['grad_norm_t'] = base.total_grad_norm(model, ow, r['grads'])
            assert float(r['grad_norm_t']) == r['grad_norm']

    t = {'raw': batch1.images, 'inputs': r1['inputs'],
         'raw2': batch2.images, 'inputs2': r2['inputs']}
    if name == 'milan_tiny':
        t['ids_shuffle'] = batch1.ids_shuffle
        t['ids_shuffle2'] = batch2.ids_shuffle
    else:
        t['noise'] = batch1.noise
        t['noise2'] = batch2.noise
    t.update(inter)
    t['clip_feat2'], t['clip_attn2'] = rec2.one('clip')
    for sfx, r, state in (('', r1, iter1), ('2', r2, iter2)):
        for k, v in r['losses'].items():
            t[f'loss{sfx}.{k}'] = v.reshape(1)
        t[f'loss{sfx}_total'] = r['parsed'].reshape(1)
        if clip:
            t[f'grad_norm{sfx}'] = r['grad_norm_t'].reshape(1)
        for k, v in r['grads'].items():
            t[f'grad{sfx}.{k}'] = v
        for k, v in state.items():
            # the frozen CLIP is recorded once, in model.pth
            if not k.startswith('target_generator.'):
                t[f'iter{1 if sfx == "" else 2}.{k}'] = v
    tensors = {k: base.stored(v) for k, v in t.items()}
    base.GENERATOR = GENERATOR
    base.save_io(os.path.join(d, 'io.safetensors'), tensors, name)

    f64 = float64_run(model0, optim_cfg, [batch1, batch2], clip)
    err2 = base.float32_error2(f64, tensors)
    base.write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    cfg_json = base.jsonable(copy.deepcopy(cfg))
    cfg_json['target_generator']['tokenizer_path'] = CLIP_FILE
    # selfsup's CLIPGenerator declares the architecture MMSelfSup infers
    # from the checkpoint (build_clip_model's argument names)
    cfg_json['target_generator']['arch'] = dict(CLIP_TINY)
    cfg_json['batch_size'] = BATCH
    cfg_json['optim_wrapper'] = base.jsonable(optim_cfg)
    cfg_json['optim_wrapper_real'] = base.jsonable(real_ow)
    cfg_json['seeds'] = seeds
    cfg_json['fixture'] = dict(
        lr_note='lr 1e-3 constant (no param_scheduler); AdamW',
        tokenizer_path_note='relative to tests/fixtures; a tiny CLIP in '
        "OpenAI's layout: " + ', '.join(f'{k}={v}' for k, v in CLIP_TINY.items()),
        clip_arch=CLIP_TINY,
        draws='torch.multinomial indices (ids_shuffle, ids_shuffle2)'
        if name == 'milan_tiny' else 'MAE noise (noise, noise2)')
    cfg_json['float32_error'] = base.error_summary(err2)
    base.write_json(os.path.join(d, 'config.json'), cfg_json)

    # ---- validation: mmengine's train_step from model.pth, nothing patched
    ckpt = torch.load(os.path.join(d, 'model.pth'), map_location='cpu',
                      weights_only=True)
    m2 = base.build_model(cfg, seeds['init_seed'] + 999)
    res = m2.load_state_dict(ckpt['state_dict'], strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    for k, v in m2.state_dict().items():
        assert torch.equal(v, init_sd[k]), (name, k)
    ow2 = build_optim_wrapper(m2, copy.deepcopy(optim_cfg))
    assert base.param_groups_of(m2, ow2) == pgroups
    for it, (batch, r, state) in enumerate(
            ((batch1, r1, iter1), (batch2, r2, iter2)), start=1):
        batch.seed_rng()
        log = m2.train_step(batch.data(), ow2)
        assert torch.equal(log['loss'].detach(), r['parsed']), (name, it)
        for k, v in m2.state_dict().items():
            assert torch.equal(v, state[k]), (name, 'replay', it, k)
    return dict(case=name, loss=float(r1['parsed']), loss2=float(r2['parsed']),
                tensors=tensors, dir=d, f32err=cfg_json['float32_error'])


# ----------------------------------------------------------- full keys
FULL_CONFIGS = [MILAN_CFG, EVA_CFG]


def full_model_keys(out_dir):
    """The full-size state_dict inventories (``milan_eva_keys.json``), built
    on the meta device by ``gen_fixtures_mim.py``'s code. The configs name
    CLIP's checkpoint by URL, so ``_load_checkpoint`` returns a meta-device
    state_dict of OpenAI's ViT-B/16 shapes instead."""
    orig_load = clip_generator._load_checkpoint

    def fake_load(path):
        assert path.endswith('clip_vit_base_16.pth.tar'), path
        with torch.device('meta'):
            return clip_state(CLIP_VIT_B16)

    clip_generator._load_checkpoint = fake_load
    try:
        return base.full_model_keys(out_dir, FULL_CONFIGS, 'milan_eva_keys.json')
    finally:
        clip_generator._load_checkpoint = orig_load


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--cases', nargs='*', default=None)
    ap.add_argument('--no-keys', action='store_true')
    args = ap.parse_args()
    t0 = time.monotonic()
    base.setup_reference(args.out)
    clip_path = write_clip(args.out)
    results = [run_case(n, CASES[n], args.out, clip_path)
               for n in (args.cases or list(CASES))]
    if not args.no_keys:
        keys, nbytes = full_model_keys(args.out)
        print(f'milan_eva_keys.json: {nbytes} bytes: ' + ', '.join(
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
