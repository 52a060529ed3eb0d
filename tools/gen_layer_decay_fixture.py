"""Per-parameter lr and weight decay from MMSelfSup 1.0.0's
``LearningRateDecayOptimWrapperConstructor`` (layer-wise lr decay).

    .venv-reference/bin/python tools/gen_layer_decay_fixture.py --out tests/fixtures/layer_decay

The model is the tiny MAE of ``tests/fixtures/mae_tiny_normpix/config.json``
(2 ViT layers, so ``num_layers = 4``). The ``optim_wrapper`` is the one of
``benchmarks/classification/imagenet/vit-base-p16_ft-8xb128-coslr-100e_in1k.py``
(AdamW, ``layer_decay_rate=0.65``, ``model_type='vit'``, zero decay for
``.ln``, ``.bias``, ``.cls_token``, ``.pos_embed``), plus a second case with
custom keys whose matches overlap, which shows that the *last* matching key
in MMSelfSup's order (the shortest) sets the decay. It writes
``groups.json``: for each case, the wrapper config and every trainable
parameter's ``lr`` and ``weight_decay`` as the built optimiser holds them.
"""
import argparse
import copy
import json
import os

import pin_cpu_kernels  # noqa: F401  (AVX2 kernels; before torch, see that file)
import torch
from mmengine.optim import build_optim_wrapper
from mmselfsup.registry import MODELS
from mmselfsup.utils import register_all_modules

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_CONFIG = os.path.join(HERE, '..', 'tests', 'fixtures', 'mae_tiny_normpix', 'config.json')

FT_WRAPPER = dict(
    optimizer=dict(
        type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999),
        model_type='vit', layer_decay_rate=0.65),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={
        '.ln': dict(decay_mult=0.0),
        '.bias': dict(decay_mult=0.0),
        '.cls_token': dict(decay_mult=0.0),
        '.pos_embed': dict(decay_mult=0.0),
    }))

OVERLAP_WRAPPER = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, weight_decay=0.1, model_type='vit', layer_decay_rate=0.5),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={
        # `layers.0.ln1` matches `ln1` too; MMSelfSup keeps the last match
        # in (longest first, then alphabetical) order, i.e. `ln1`.
        'layers.0.ln1': dict(decay_mult=0.0),
        'ln1': dict(decay_mult=2.0),
        'decoder': dict(decay_mult=0.5),
    }))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--model-config', default=MODEL_CONFIG,
                   help='the tiny MAE config.json (default: the committed '
                   'tests/fixtures/mae_tiny_normpix/config.json)')
    args = p.parse_args()
    register_all_modules()
    torch.manual_seed(0)
    with open(args.model_config) as f:
        cfg = json.load(f)
    for extra in ('batch_size', 'optim_wrapper', 'optimizer_resolved', 'seeds', 'derived'):
        cfg.pop(extra, None)
    model = MODELS.build(cfg)
    out = {}
    for case, wrapper in (('vit_ft', FT_WRAPPER), ('overlap', OVERLAP_WRAPPER)):
        ow = build_optim_wrapper(model, copy.deepcopy(wrapper))
        params = {}
        names = {id(p): n for n, p in model.named_parameters()}
        for g in ow.optimizer.param_groups:
            for prm in g['params']:
                params[names[id(prm)]] = dict(lr=g['lr'], weight_decay=g['weight_decay'])
        out[case] = dict(optim_wrapper=wrapper, params=params)
        print(case, len(params), 'parameters')
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'groups.json'), 'w') as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == '__main__':
    main()
