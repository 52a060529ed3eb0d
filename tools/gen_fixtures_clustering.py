#!/usr/bin/env python
"""Generate golden fixtures for the memory-bank, clustering and pretext
algorithms of the REAL MMSelfSup 1.0.0: NPID, ODC, DeepCluster, RelativeLoc
and RotationPred.

    .venv-reference/bin/python tools/gen_fixtures_clustering.py --out tests/fixtures [--list] [--cases npid_tiny ...]

House style: that of ``tools/gen_fixtures_contrastive.py`` (read its
docstring first). Per case it

1. builds the algorithm from a plain dict through
   ``mmselfsup.registry.MODELS.build`` (tiny ResNet-18, BN instead of SyncBN,
   tiny necks/heads/memories), seeds torch/numpy/random with ``init_seed``
   and calls ``model.init_weights()``, then perturbs every BatchNorm
   (weight ~ U(0.5,1.5), bias ~ N(0,0.1), running_mean ~ N(0,0.1),
   running_var ~ U(0.5,1.5); affine-less BNs only get the running stats)
   with ``torch.Generator().manual_seed(bn_perturb_seed)``. The result is
   ``model.pth`` (``{'meta', 'state_dict'}``) + ``keys.json``;
2. builds the data with the real transforms where they belong to the
   algorithm (``RotationWithLabels``, ``RandomPatchWithLabels`` with its
   python ``random.randint`` draws recorded), always packs it with the real
   ``PackSelfSupInputs`` and collates it with mmengine's ``default_collate``,
   so that ``data_samples`` carry exactly the reference fields
   (``sample_idx.value``, ``pseudo_label.clustering_label|rot_label|patch_label``);
3. DeepCluster / ODC only: runs the real ``DeepClusterHook.deepcluster``
   (``before_train``) on a fake runner: feature extraction with the real
   ``Extractor`` (eval mode, ``model.neck([backbone(x)[-1]])``), the real
   ``mmselfsup.utils.clustering.Kmeans`` (faiss ``PCAMatrix`` + faiss
   k-means; the GPU index of ``run_kmeans`` is replaced by
   ``faiss.IndexFlatL2``, the only change), label assignment, the real
   ``DeepClusterSampler.set_uniform_indices`` (DeepCluster), loss re-weight
   and ``memory_bank.init_memory`` (ODC), and the head re-initialisation.
   ``model.pth`` is the state BEFORE this hook; the changed state_dict
   entries are recorded as ``hook.state.*``;
4. runs two training iterations (``torch.manual_seed(step_seed)`` /
   ``torch.manual_seed(step2_seed)`` before each; one mmengine
   ``OptimWrapper`` around SGD(lr 0.1, momentum 0.9, wd 1e-4) built by
   ``build_optim_wrapper`` with the real config's ``paramwise_cfg``), recording
   loss, gradients and the whole state_dict after each iteration, plus the
   non-state_dict memories (ODC ``feature_bank`` / ``label_bank``) and, for
   ODC, the state after the real ``ODCHook.after_train_iter``;
5. records every random draw the algorithm makes during a step (NPID alias
   sampling, Dropout masks of the ODC/RelativeLoc necks) as ``draw.*`` /
   ``draw2.*``, and the non-torch draws of the hooks (faiss seed, k-means
   initial centroids, sklearn 2-means splits of ODC) as ``hook.*`` /
   ``draw*.redirect*``. The recorders re-generate each draw from a saved
   torch RNG state and restore the state afterwards, so that the recorded run
   consumes the RNG exactly as an unrecorded one (checked by replay A);
6. validates (aborts on any mismatch): replay A = a fresh model (different
   init seed) loads ``model.pth`` strictly with ``weights_only=True``, runs
   the hook (DeepCluster/ODC) and mmengine's real ``model.train_step`` twice
   with **no patches** (plus ``ODCHook.after_train_iter`` for ODC): loss,
   every state_dict entry and every memory must be bit-equal; replay B
   re-runs both iterations by hand (grads, losses, features bit-equal); a few
   things are re-derived in plain torch (NPID logits/loss/memory update, ODC
   memory update/relabel/centroids/re-weight, faiss PCA and k-means, the
   class-weighted CE of DeepCluster/ODC);
7. reruns both training iterations in float64 from the same starting state
   and writes ``float32_error2.json`` (same format as the contrastive one).

Single process, CPU: what was patched
-------------------------------------
- NPID, DeepCluster, RotationPred, RelativeLoc: nothing (mmengine's
  ``all_gather`` is the identity at world size 1).
- ODC: ``ODCMemory`` calls ``torch.distributed`` directly (``all_gather``,
  ``broadcast``, ``barrier``, ``all_reduce``) and ``.cuda()``; the reference
  ODC cannot run outside a distributed launch (``ODCHook`` even asserts
  ``dist_mode``). The ODC case therefore initialises a real single-process
  ``gloo`` group (``world_size=1``, in-process ``HashStore``) and replaces
  ``torch.Tensor.cuda`` by the identity while it runs. Nothing else.
- DeepCluster/ODC hooks: ``run_kmeans`` uses ``faiss.StandardGpuResources`` /
  ``GpuIndexFlatL2``; it is replaced by a copy that differs only in the index
  (``faiss.IndexFlatL2``); and ``mmselfsup.utils.clustering`` sees a
  ``faiss`` shim whose ``PCAMatrix`` accepts the ``eigen_power=`` keyword
  (faiss-cpu 1.15's SWIG constructors are positional only). The hooks are
  built with ``is_distributed()``
  False (their non-distributed extraction path; ODC's gloo group is created
  after the hooks), and run on a fake runner exposing ``model.module``,
  ``train_dataloader``, ``iter``, ``epoch``, ``rank``, ``work_dir``.

Determinism: float32, one thread, AVX2 pins (``tools/pin_cpu_kernels.py``),
plus ``OPENBLAS_CORETYPE=Haswell`` (faiss's and numpy's OpenBLAS),
``FAISS_SIMD_LEVEL=AVX2`` and numpy's AVX-512 dispatch disabled, set here
before numpy/faiss load. faiss-cpu 1.15.1 is pinned in
``tools/reference/requirements.txt``.

See tools/README.md ("gen_fixtures_clustering.py") for every tensor.
"""
import os

# OpenBLAS (numpy's and faiss's), faiss SIMD and numpy dispatch pins: they are
# read when the libraries load, so before numpy / faiss / torch are imported.
os.environ['OPENBLAS_CORETYPE'] = 'Haswell'
os.environ['OPENBLAS_NUM_THREADS'] = '1'
os.environ['OMP_NUM_THREADS'] = '1'
os.environ['FAISS_SIMD_LEVEL'] = 'AVX2'
os.environ['NPY_DISABLE_CPU_FEATURES'] = (
    'AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX '
    'AVX512_CNL AVX512_ICL')

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings('ignore')

import pin_cpu_kernels  # noqa: E402,F401  (AVX2 kernels; before torch)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402

import faiss  # noqa: E402
import mmcls  # noqa: E402
import mmengine  # noqa: E402
import mmselfsup  # noqa: E402
import mmselfsup.datasets.transforms.processing as mm_processing  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.dataset import DefaultSampler, default_collate  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmselfsup.datasets.samplers import DeepClusterSampler  # noqa: E402
from mmselfsup.engine.hooks import DeepClusterHook, ODCHook  # noqa: E402
from mmselfsup.registry import MODELS, TRANSFORMS  # noqa: E402
from mmselfsup.utils import clustering as mm_clustering  # noqa: E402
from mmselfsup.utils import register_all_modules  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

GENERATOR = 'tools/gen_fixtures_clustering.py'
BATCH = 4
OPTIMIZER = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
DATA_PREPROCESSOR = dict(mean=MEAN, std=STD, bgr_to_rgb=True)
IDENTITY_PREPROCESSOR = dict(mean=[0., 0., 0.], std=[1., 1., 1.],
                             bgr_to_rgb=False)
R18_BASE = 2  # ResNet-18 stages 2/4/8/16 channels
CE = dict(type='mmcls.CrossEntropyLoss')
KINK_MARGIN = 1e-5  # smallest |ReLU input| allowed (see the contrastive one)
ARGMAX_MARGIN = 1e-5  # smallest top-1/top-2 gap of a recorded argmax


# ---------------------------------------------------------------- configs
def resnet():
    return dict(
        type='ResNet',
        depth=18,
        in_channels=3,
        stem_channels=R18_BASE,
        base_channels=R18_BASE,
        out_indices=[4],
        norm_cfg=dict(type='BN'))


def cfg_npid():
    # _base_/models/npid.py (neg_num 65536, length 1281167, feat 128, T 0.07)
    return dict(
        type='NPID',
        neg_num=16,
        ensure_neg=False,
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(),
        neck=dict(
            type='LinearNeck', in_channels=16, out_channels=8,
            with_avg_pool=True),
        head=dict(type='ContrastiveHead', loss=CE, temperature=0.07),
        memory_bank=dict(
            type='SimpleMemory', length=20, feat_dim=8, momentum=0.5))


def cfg_odc():
    # _base_/models/odc.py (neck 2048->512->256, 10000 classes, min_cluster
    # 20); BN1d instead of the neck's default SyncBN
    return dict(
        type='ODC',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(),
        neck=dict(
            type='ODCNeck',
            in_channels=16,
            hid_channels=16,
            out_channels=8,
            with_avg_pool=True,
            norm_cfg=dict(type='BN1d')),
        head=dict(
            type='ClsHead',
            loss=CE,
            with_avg_pool=False,
            in_channels=8,
            num_classes=4),
        memory_bank=dict(
            type='ODCMemory',
            length=16,
            feat_dim=8,
            momentum=0.5,
            num_classes=4,
            min_cluster=4,
            debug=False))


def cfg_deepcluster():
    # _base_/models/deepcluster.py (10000 classes)
    return dict(
        type='DeepCluster',
        data_preprocessor=copy.deepcopy(DATA_PREPROCESSOR),
        backbone=resnet(),
        neck=dict(type='AvgPool2dNeck'),
        head=dict(
            type='ClsHead',
            loss=CE,
            with_avg_pool=False,
            in_channels=16,
            num_classes=4))


def cfg_relativeloc():
    # _base_/models/relative-loc.py (neck 2x2048 -> 4096, head 4096 -> 8)
    return dict(
        type='RelativeLoc',
        data_preprocessor=dict(
            type='mmselfsup.RelativeLocDataPreprocessor',
            mean=[124, 117, 104],
            std=[59, 58, 58],
            bgr_to_rgb=True),
        backbone=resnet(),
        neck=dict(
            type='RelativeLocNeck',
            in_channels=16,
            out_channels=32,
            with_avg_pool=True),
        head=dict(
            type='ClsHead',
            loss=CE,
            with_avg_pool=False,
            in_channels=32,
            num_classes=8,
            init_cfg=[
                dict(type='Normal', std=0.005, layer='Linear'),
                dict(type='Constant', val=1,
                     layer=['_BatchNorm', 'GroupNorm'])
            ]))


def cfg_rotationpred():
    # _base_/models/rotation-pred.py (SyncBN -> BN)
    return dict(
        type='RotationPred',
        data_preprocessor=dict(
            type='mmselfsup.RotationPredDataPreprocessor',
            mean=MEAN,
            std=STD,
            bgr_to_rgb=True),
        backbone=resnet(),
        head=dict(
            type='ClsHead',
            loss=CE,
            with_avg_pool=True,
            in_channels=16,
            num_classes=4))


HEAD_MOMENTUM0 = dict(custom_keys={'head': dict(momentum=0.)})
CASES = {
    'npid_tiny': dict(cfg=cfg_npid, seed=1101, paramwise=None),
    'odc_tiny': dict(cfg=cfg_odc, seed=1202, paramwise=HEAD_MOMENTUM0),
    'deepcluster_tiny':
    dict(cfg=cfg_deepcluster, seed=1303, paramwise=HEAD_MOMENTUM0),
    'relativeloc_tiny':
    dict(
        cfg=cfg_relativeloc,
        seed=1404,
        paramwise=dict(custom_keys={
            'neck': dict(decay_mult=5.0),
            'head': dict(decay_mult=5.0)
        })),
    'rotationpred_tiny':
    dict(
        cfg=cfg_rotationpred,
        seed=1505,
        paramwise=None,
        seed_overrides=dict(data2_seed=1520)),
}
# dataset sizes (NPID: memory length; ODC: memory length; DeepCluster:
# the clustered set) and hook settings
N_DATA = {'NPID': 20, 'ODC': 16, 'DeepCluster': 16}
DC_CLUSTERING = dict(type='Kmeans', k=4, pca_dim=8)
ODC_CLUSTERING = dict(type='Kmeans', k=4, pca_dim=-1)  # config: no PCA
ODC_HOOK = dict(
    centroids_update_interval=2,  # config: 10 (iterations)
    deal_with_small_clusters_interval=1,  # config: 1
    evaluate_interval=1,  # config: 50 (only prints)
    reweight=True,
    reweight_pow=0.5)
RELLOC_IMG = 111  # 3 x (16 + 21): 16x16 patches (jitter 21)
ROT_IMG = 32


def seeds_of(case):
    """Seeds actually used by the case (see tools/README.md)."""
    s = case['seed']
    t = case['cfg']()['type']
    d = dict(init_seed=s, bn_perturb_seed=s + 1, data_seed=s + 2,
             step_seed=s + 3)
    if t in ('ODC', 'DeepCluster'):
        d['hook_seed'] = s + 4
    if t in ('RotationPred', 'RelativeLoc'):
        d['data2_seed'] = s + 5
    d['step2_seed'] = s + 6
    if t in ('NPID', 'ODC', 'DeepCluster'):
        d['sampler_seed'] = s + 7
    if t == 'RelativeLoc':
        d['pipeline_seed'] = s + 8  # batch 2: pipeline_seed + 1
    d.update(case.get('seed_overrides', {}))
    return d


# ---------------------------------------------------------------- helpers
def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def perturb_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    names = []
    for name, m in model.named_modules():
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


def uses_identity_preproc(cfg):
    return cfg['type'] in ('NPID', 'ODC', 'DeepCluster')


def build_model(cfg, init_seed):
    c = copy.deepcopy(cfg)
    if uses_identity_preproc(c):
        # float views pass through bit-exactly (x - 0) / 1
        c['data_preprocessor'] = copy.deepcopy(IDENTITY_PREPROCESSOR)
    seed_all(init_seed)
    model = MODELS.build(c)
    model.init_weights()
    model.train()
    return model


def optim_cfg(case):
    c = dict(type='OptimWrapper', optimizer=copy.deepcopy(OPTIMIZER))
    if case['paramwise'] is not None:
        c['paramwise_cfg'] = copy.deepcopy(case['paramwise'])
    return c


def make_ow(model, case):
    return build_optim_wrapper(model, optim_cfg(case))


def param_groups(model, ow):
    ids = {}
    for g in ow.optimizer.param_groups:
        for p in g['params']:
            ids[id(p)] = g
    out = {}
    for k, p in model.named_parameters():
        g = ids.get(id(p))
        out[k] = dict(
            in_optimizer=g is not None,
            lr=None if g is None else g['lr'],
            momentum=None if g is None else g['momentum'],
            weight_decay=None if g is None else g['weight_decay'])
    return out


def clone_sd(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def deep_clone(t):
    if isinstance(t, (list, tuple)):
        return type(t)(deep_clone(x) for x in t)
    return t.detach().clone()


def mem_state(model):
    """Memories that are NOT in the state_dict (ODC only)."""
    if model.__class__.__name__ != 'ODC':
        return {}
    mb = model.memory_bank
    return dict(
        feature_bank=mb.feature_bank.detach().clone(),
        label_bank=mb.label_bank.detach().clone())


def set_mem_state(model, st):
    if not st:
        return
    mb = model.memory_bank
    mb.feature_bank = st['feature_bank'].clone()
    mb.label_bank = st['label_bank'].clone()
    mb.initialized = True


def assert_same(a, b, what):
    assert list(a.keys()) == list(b.keys()), (what, set(a) ^ set(b))
    for k in a:
        assert a[k].dtype == b[k].dtype, (what, k, a[k].dtype, b[k].dtype)
        assert torch.equal(a[k], b[k]), (what, k)


class Wrap:
    """What hooks reach as ``runner.model`` (a DDP wrapper has ``.module``)."""

    def __init__(self, m):
        self.module = m

    def eval(self):
        self.module.eval()

    def train(self):
        self.module.train()


class FakeDataset:

    def __init__(self, n):
        self.n = n
        self.clustering_labels = [-1] * n

    def __len__(self):
        return self.n

    def assign_labels(self, labels):
        assert len(labels) == self.n
        self.clustering_labels = labels[:]


class FakeLoader:

    def __init__(self, dataset, sampler):
        self.dataset = dataset
        self.sampler = sampler


class FakeRunner:

    def __init__(self, model, work_dir, train_dataloader=None):
        self.model = Wrap(model)
        self.work_dir = work_dir
        self.train_dataloader = train_dataloader
        self.iter = 0
        self.epoch = 0
        self.rank = 0


@contextlib.contextmanager
def quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# ------------------------------------------------- faiss k-means on the CPU
KMEANS_LOG = []


def run_kmeans_cpu(x, nmb_clusters, verbose=False):
    """``mmselfsup.utils.clustering.run_kmeans`` with ``faiss.IndexFlatL2``
    instead of ``GpuIndexFlatL2`` (the only difference)."""
    n_data, d = x.shape
    clus = faiss.Clustering(d, nmb_clusters)
    clus.seed = np.random.randint(1234)
    clus.niter = 20
    clus.max_points_per_centroid = 10000000
    index = faiss.IndexFlatL2(d)
    clus.train(x, index)
    _, I = index.search(x, 1)  # noqa: E741
    stats = clus.iteration_stats
    losses = np.array([stats.at(i).obj for i in range(stats.size())])
    if verbose:
        print(f'k-means loss evolution: {losses}')
    KMEANS_LOG.append(
        dict(
            x=np.array(x, copy=True),
            seed=int(clus.seed),
            k=int(nmb_clusters),
            centroids=faiss.vector_to_array(clus.centroids).reshape(
                nmb_clusters, d).copy(),
            labels=I[:, 0].astype(np.int64).copy(),
            obj=losses.astype(np.float64),
            nsplit=np.array([stats.at(i).nsplit
                             for i in range(stats.size())])))
    return [int(n[0]) for n in I], losses[-1]


PREPROC_LOG = []
_orig_preprocess = mm_clustering.preprocess_features


def preprocess_recorded(npdata, pca):
    x = np.array(npdata, copy=True)
    out = _orig_preprocess(npdata, pca)
    PREPROC_LOG.append(dict(x=x, pca=pca, out=np.array(out, copy=True)))
    return out


class FaissKeywordShim:
    """``faiss`` as seen by ``mmselfsup.utils.clustering``: faiss-cpu 1.15's
    SWIG constructors take positional arguments only, while
    ``preprocess_features`` calls ``faiss.PCAMatrix(ndim, pca,
    eigen_power=-0.5)`` (accepted by the faiss releases of its time). Only
    the keyword is mapped; everything else is faiss itself."""

    @staticmethod
    def PCAMatrix(d_in=0, d_out=0, eigen_power=0., random_rotation=False):
        return faiss.PCAMatrix(d_in, d_out, eigen_power, random_rotation)

    def __getattr__(self, name):
        return getattr(faiss, name)


mm_clustering.faiss = FaissKeywordShim()
mm_clustering.run_kmeans = run_kmeans_cpu
mm_clustering.preprocess_features = preprocess_recorded


def faiss_kmeans_trajectory(x, k, seed, niter=20):
    """Centroids after t = 0..niter faiss iterations (t = 0: the random
    initial centroids), each from a fresh ``faiss.Clustering`` with the same
    seed (faiss's k-means is deterministic given the seed)."""
    traj = []
    for t in range(niter + 1):
        c = faiss.Clustering(x.shape[1], k)
        c.seed = seed
        c.niter = t
        c.max_points_per_centroid = 10000000
        c.train(x, faiss.IndexFlatL2(x.shape[1]))
        traj.append(faiss.vector_to_array(c.centroids).reshape(k, -1))
    return np.stack(traj)


def kmeans_by_hand(x, init_idx, niter):
    """Lloyd iterations with faiss's semantics in float32: assignment to the
    nearest centroid (squared L2; first index on ties), then each centroid =
    (float32 sum of its points in index order) * (1 / count). Empty clusters
    would be split (faiss ``split_clusters``); none occur in the fixtures
    (asserted)."""
    x = x.astype(np.float32)
    c = x[init_idx].copy()
    traj = [c.copy()]
    assigns = []
    for _ in range(niter):
        d2 = ((x[:, None, :] - c[None, :, :])**2).sum(-1)
        a = d2.argmin(1)
        s = np.sort(d2, 1)
        assert (s[:, 1] - s[:, 0]).min() > ARGMAX_MARGIN, 'k-means near tie'
        assigns.append(a)
        newc = np.zeros_like(c)
        cnt = np.zeros(len(c), np.float32)
        for i in range(len(x)):
            newc[a[i]] += x[i]
            cnt[a[i]] += 1
        assert (cnt > 0).all(), 'empty cluster: faiss would split'
        newc *= (np.float32(1) / cnt)[:, None]
        c = newc
        traj.append(c.copy())
    d2 = ((x[:, None, :] - c[None, :, :])**2).sum(-1)
    return np.stack(traj), np.stack(assigns), d2.argmin(1)


# ------------------------------------------------------------ draw recording
class DrawRecorder:
    """Dropout masks and NPID alias draws, re-generated from the saved torch
    RNG state (the state is restored afterwards: RNG use is unchanged)."""

    def __init__(self, model):
        self.store = {}
        self.handles = []
        self.restore = []
        for name, m in model.named_modules():
            if isinstance(m, nn.Dropout):
                self.handles.append(m.register_forward_pre_hook(self._pre))
                self.handles.append(m.register_forward_hook(self._post))
        if hasattr(model, 'memory_bank') and hasattr(model.memory_bank,
                                                     'multinomial'):
            self._wrap_alias(model.memory_bank.multinomial)

    def add(self, k, v):
        self.store.setdefault(k, []).append(v.detach().clone())

    def _pre(self, m, args):
        self._state = torch.get_rng_state()
        self._x = args[0].detach().clone()

    def _post(self, m, args, out):
        if not m.training or m.p == 0:
            return
        after = torch.get_rng_state()
        torch.set_rng_state(self._state)
        noise = torch.empty_like(self._x).bernoulli_(1 - m.p)
        assert torch.equal(torch.get_rng_state(), after), 'dropout rng'
        torch.set_rng_state(after)
        self.add('dropout_mask', noise)
        noise = noise.clone().div_(1 - m.p)
        assert torch.equal(out, self._x * noise), 'dropout replay'

    def _wrap_alias(self, am):
        orig = am.draw

        def draw(N):
            st = torch.get_rng_state()
            out = orig(N)
            after = torch.get_rng_state()
            torch.set_rng_state(st)
            K = am.alias.size(0)
            kk = torch.zeros(N, dtype=torch.long).random_(0, K)
            b = torch.bernoulli(am.prob.index_select(0, kk))
            assert torch.equal(torch.get_rng_state(), after), 'alias rng'
            torch.set_rng_state(after)
            ref = kk.mul(b.long()) + am.alias.index_select(0, kk).mul(
                (1 - b).long())
            assert torch.equal(out, ref), 'alias replay'
            self.add('alias_kk', kk)
            self.add('alias_b', b)
            self.add('neg_idx', out)
            return out

        am.draw = draw
        self.restore.append(lambda: am.__dict__.pop('draw'))

    def close(self):
        for h in self.handles:
            h.remove()
        for r in self.restore:
            r()


class Capture:
    """Forward hooks for intermediates (recorded run only)."""

    def __init__(self):
        self.store = {}
        self.handles = []

    def add(self, k, v):
        self.store.setdefault(k, []).append(deep_clone(v))

    def out(self, module, name, pick=lambda o: o):
        self.handles.append(
            module.register_forward_hook(
                lambda m, i, o: self.add(name, pick(o))))

    def inp(self, module, name, pick):
        def f(m, args):
            for k, v in pick(args).items():
                self.add(f'{name}{k}', v)

        self.handles.append(module.register_forward_pre_hook(f))

    def close(self):
        for h in self.handles:
            h.remove()


def install_capture(model, cap):
    t = model.__class__.__name__
    cap.out(model.backbone, 'backbone', pick=lambda o: o[0])
    if model.with_neck:
        cap.out(model.neck, 'neck', pick=lambda o: o[0])
    if t == 'NPID':
        cap.inp(model.head, 'head_in', lambda a: {'.pos': a[0], '.neg': a[1]})
    else:
        cap.out(model.head.fc_cls, 'logits')
        cap.inp(model.head, 'head_in', lambda a: {'.label': a[1]})


# ----------------------------------------------------------------- data
def pack(img, **kw):
    """The real PackSelfSupInputs on one pipeline result."""
    keys = dict(
        algorithm_keys=kw.pop('algorithm_keys', []),
        pseudo_label_keys=kw.pop('pseudo_label_keys', []),
        meta_keys=[])
    t = TRANSFORMS.build(dict(type='PackSelfSupInputs', **keys))
    return t(dict(img=img, **kw))


def hwc(x):
    """(3,H,W) float tensor -> (H,W,3) float32 array (PackSelfSupInputs turns
    it back into the same CHW tensor bit for bit)."""
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy())


def collate(items):
    return default_collate(items)


def copy_data(data):
    return dict(
        inputs=[x.clone() for x in data['inputs']],
        data_samples=copy.deepcopy(data['data_samples']))


def float_dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g)


def batches_from_sampler(cfg, seeds, n):
    """Sample indices of iterations 1 and 2 (first two batches of epoch 0)."""
    t = cfg['type']
    ds = FakeDataset(n)
    if t == 'NPID':
        s = DefaultSampler(ds, shuffle=True, seed=seeds['sampler_seed'])
        idx = list(iter(s))
        return idx, s
    raise AssertionError(t)


def items_npid_odc(images, idx):
    return [pack(hwc(images[i]), algorithm_keys=['sample_idx'],
                 sample_idx=int(i)) for i in idx]


def items_deepcluster(images, idx, labels):
    # DeepClusterImageNet.prepare_data: clustering_label = int(labels[idx])
    return [pack(hwc(images[i]), pseudo_label_keys=['clustering_label'],
                 clustering_label=int(labels[i])) for i in idx]


def uint8_images(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), generator=g,
                         dtype=torch.uint8).numpy()


def rotation_batch(seed):
    raw = uint8_images(BATCH, ROT_IMG, ROT_IMG, seed)  # BGR, HWC
    t = TRANSFORMS.build(dict(type='RotationWithLabels'))
    items = []
    for i in range(BATCH):
        res = t(dict(img=raw[i].copy()))
        items.append(pack(res['img'], pseudo_label_keys=['rot_label'],
                          rot_label=res['rot_label']))
    data = collate(items)
    rec = dict(raw=torch.from_numpy(raw.copy()))
    for k, v in enumerate(data['inputs']):
        rec[f'packed.{k}'] = v.clone()
    rec['rot_label'] = torch.stack(
        [s.pseudo_label.rot_label for s in data['data_samples']])
    return data, rec


class RandintLog:
    """Records the python ``random.randint`` draws of RandomCrop.get_params
    (called by RandomPatchWithLabels); calls the original."""

    def __init__(self):
        self.draws = []

    def __enter__(self):
        self.orig = mm_processing.random.randint

        def f(a, b):
            v = self.orig(a, b)
            self.draws.append((a, b, v))
            return v

        mm_processing.random.randint = f
        return self

    def __exit__(self, *a):
        mm_processing.random.randint = self.orig


def relloc_batch(img_seed, pipeline_seed):
    raw = uint8_images(BATCH, RELLOC_IMG, RELLOC_IMG, img_seed)  # BGR, HWC
    t = TRANSFORMS.build(dict(type='RandomPatchWithLabels'))
    random.seed(pipeline_seed)
    items, offs, bounds = [], [], []
    with RandintLog() as log:
        for i in range(BATCH):
            n0 = len(log.draws)
            res = t(dict(img=raw[i].copy()))
            d = log.draws[n0:]
            assert len(d) == 18, len(d)
            offs.append([[d[2 * c][2], d[2 * c + 1][2]] for c in range(9)])
            bounds.append([[d[2 * c][1], d[2 * c + 1][1]] for c in range(9)])
            items.append(
                pack(res['img'],
                     pseudo_label_keys=['patch_box', 'patch_label',
                                        'unpatched_img'],
                     patch_box=res['patch_box'],
                     patch_label=res['patch_label'],
                     unpatched_img=res['unpatched_img']))
    # replay: the same seed gives the same patches (no hidden state)
    random.seed(pipeline_seed)
    for i in range(BATCH):
        res = t(dict(img=raw[i].copy()))
        again = pack(res['img'])['inputs']
        for a, b in zip(again, items[i]['inputs']):
            assert torch.equal(a, b)
    data = collate(items)
    rec = dict(raw=torch.from_numpy(raw.copy()))
    rec['patch_offsets'] = torch.tensor(offs, dtype=torch.int64)  # (B,9,2)
    rec['patch_offset_max'] = torch.tensor(bounds, dtype=torch.int64)
    for k, v in enumerate(data['inputs']):
        rec[f'packed.{k}'] = v.clone()
    ds = data['data_samples']
    rec['patch_label'] = torch.stack([s.pseudo_label.patch_label for s in ds])
    rec['patch_box'] = torch.stack([s.pseudo_label.patch_box for s in ds])
    return data, rec


# ----------------------------------------------------------- ReLU margins
def relu_margin(model, data, seed, what):
    found = []

    def hook(name):
        def f(mod, inp):
            v = inp[0].detach().abs()
            nz = v[v > 0]
            if nz.numel():
                found.append((name, float(nz.min())))
        return f

    m = copy.deepcopy(model).train()
    handles = [
        mod.register_forward_pre_hook(hook(n))
        for n, mod in m.named_modules() if isinstance(mod, nn.ReLU)
    ]
    try:
        st = torch.get_rng_state()
        torch.manual_seed(seed)
        with torch.no_grad():
            d = m.data_preprocessor(copy_data(data), True)
            m._run_forward(d, mode='loss')
        torch.set_rng_state(st)
    finally:
        for h in handles:
            h.remove()
    worst = min(found, key=lambda f: f[1])
    if worst[1] < KINK_MARGIN:
        raise SystemExit(f'{what}: ReLU input {worst[1]:.2e} at {worst[0]} '
                         f'is within {KINK_MARGIN} of the kink; pick '
                         'another seed')
    return worst


def features(model, inputs0):
    out = {}
    for mode, prefix in ((True, 'feat'), (False, 'feat_eval')):
        m = copy.deepcopy(model)
        m.train(mode)
        with torch.no_grad():
            f = m.extract_feat([inputs0.clone()])
        for i, x in enumerate(f):
            out[f'{prefix}.{i}'] = x.detach().clone()
    return out


# ------------------------------------------------------------------ hooks
def make_dc_hook(cfg, images):
    """The real DeepClusterHook for the case (built while
    ``is_distributed()`` is False), with a real DataLoader over the packed
    float images (identity preprocessor) as ``extract_dataloader``."""
    items = [pack(hwc(images[i])) for i in range(len(images))]
    loader = torch.utils.data.DataLoader(
        items, batch_size=8, shuffle=False, collate_fn=default_collate)
    if cfg['type'] == 'DeepCluster':
        kw = dict(
            clustering=ConfigDict(DC_CLUSTERING),
            unif_sampling=True,
            reweight=False,
            reweight_pow=0.5,
            initial=True,
            interval=1)
    else:
        kw = dict(
            clustering=ConfigDict(ODC_CLUSTERING),
            unif_sampling=False,
            reweight=True,
            reweight_pow=0.5,
            init_memory=True,
            initial=True,
            interval=9999999999)
    assert not dist.is_initialized()
    return DeepClusterHook(extract_dataloader=loader, **kw)


def train_loader_for(cfg, seeds, n):
    ds = FakeDataset(n)
    if cfg['type'] == 'DeepCluster':
        # deepcluster config: DeepClusterSampler(shuffle=True) (replace False)
        s = DeepClusterSampler(ds, shuffle=True, seed=seeds['sampler_seed'])
    else:
        # odc config: DeepClusterSampler(shuffle=True, replace=True)
        s = DeepClusterSampler(
            ds, shuffle=True, seed=seeds['sampler_seed'], replace=True)
    return FakeLoader(ds, s)


def run_before_train_hook(model, cfg, seeds, images, hook, work_dir):
    """``DeepClusterHook.before_train`` -> ``deepcluster(runner)``, with
    ``np.random.seed(hook_seed)`` (faiss seed = np.random.randint(1234))
    and ``torch.manual_seed(hook_seed)`` (head re-init) first. Returns the
    train loader (its sampler holds the uniform indices for DeepCluster)."""
    loader = train_loader_for(cfg, seeds, len(images))
    runner = FakeRunner(model, work_dir, loader)
    KMEANS_LOG.clear()
    PREPROC_LOG.clear()
    np.random.seed(seeds['hook_seed'])
    torch.manual_seed(seeds['hook_seed'])
    with quiet():
        hook.before_train(runner)
    assert len(KMEANS_LOG) == 1 and len(PREPROC_LOG) == 1
    return loader, dict(KMEANS_LOG[0]), dict(PREPROC_LOG[0])


def odc_after_iter(model, hook, it):
    runner = FakeRunner(model, None)
    runner.iter = it - 1  # mmengine: runner.iter is 0 during iteration 1
    with quiet():
        hook.after_train_iter(runner, batch_idx=it - 1)


class RedirectLog:
    """Recording only: what ODCMemory.deal_with_small_clusters does."""

    def __init__(self, mb):
        self.mb = mb
        self.events = []

    def __enter__(self):
        mb = self.mb
        self.orig_part = mb._partition_max_cluster
        self.orig_redir = mb._redirect_empty_clusters

        def part(max_cluster):
            s1, s2 = self.orig_part(max_cluster)
            self.events.append(
                dict(
                    max_cluster=int(max_cluster),
                    sub1=torch.from_numpy(np.sort(np.asarray(s1))).long(),
                    sub2=torch.from_numpy(np.sort(np.asarray(s2))).long()))
            return s1, s2

        def redir(empty):
            self.reassigned = mb.label_bank.clone()
            self.small = torch.tensor(list(empty), dtype=torch.int64)
            return self.orig_redir(empty)

        mb._partition_max_cluster = part
        mb._redirect_empty_clusters = redir
        self.reassigned = None
        self.small = torch.zeros(0, dtype=torch.int64)
        return self

    def __exit__(self, *a):
        self.mb.__dict__.pop('_partition_max_cluster')
        self.mb.__dict__.pop('_redirect_empty_clusters')


# ------------------------------------------------------------- iterations
def forward_backward(model, data, seed, ow):
    """One iteration by hand, exactly as BaseModel.train_step (preprocess,
    forward, parse_losses, OptimWrapper backward/step/zero_grad), keeping
    the gradients."""
    torch.manual_seed(seed)
    d = model.data_preprocessor(copy_data(data), True)
    losses = model._run_forward(d, mode='loss')  # as train_step
    parsed, log_vars = model.parse_losses(losses)
    losses = {k: v.detach().clone() for k, v in losses.items()}
    ow.backward(parsed)
    grads = {}
    for k, p in model.named_parameters():
        if p.grad is not None:
            grads[k] = p.grad.detach().clone()
        elif p.requires_grad:
            raise AssertionError(f'trainable {k} got no grad')
    ow.step()
    ow.zero_grad()
    return d, losses, parsed.detach().clone(), grads


def to_store(v):
    v = v.detach()
    if v.dtype.is_floating_point:
        v = v.to(torch.float32)
    return v.contiguous()


# ------------------------------------------------------- plain-torch checks
def check_npid(dbg, losses, before, after, idx, neg_idx, cfg):
    T = cfg['head']['temperature']
    m = cfg['memory_bank']['momentum']
    f = dbg['feature']
    bank = before['memory_bank.feature_bank']
    pos = (bank[idx] * f).sum(1, keepdim=True)
    neg = torch.bmm(bank[neg_idx], f.unsqueeze(2)).squeeze(2)
    assert torch.allclose(pos, dbg['pos_logits'], atol=1e-6)
    assert torch.allclose(neg, dbg['neg_logits'], atol=1e-6)
    logits = torch.cat([pos, neg], 1) / T
    ref = nn.functional.cross_entropy(
        logits, torch.zeros(len(f), dtype=torch.long))
    assert torch.allclose(ref, losses['loss'], rtol=1e-6), (ref, losses)
    fn = nn.functional.normalize(f)
    new = nn.functional.normalize((1 - m) * bank[idx] + m * fn)
    exp = bank.clone()
    exp[idx] = new
    assert torch.allclose(exp, after['memory_bank.feature_bank'], atol=1e-7)
    # rows not in the batch are untouched (bit-equal)
    keep = torch.ones(len(bank), dtype=torch.bool)
    keep[idx] = False
    assert torch.equal(bank[keep], after['memory_bank.feature_bank'][keep])


def check_weighted_ce(logits, labels, weight, loss):
    """mmcls CrossEntropyLoss(class_weight=w), reduction mean: mean_i of
    w[y_i] * CE_i (NOT divided by sum_i w[y_i])."""
    ce = nn.functional.cross_entropy(logits, labels, reduction='none')
    ref = (ce * weight[labels]).mean() if weight is not None else ce.mean()
    assert torch.allclose(ref, loss, rtol=1e-6), (ref, loss)


def check_odc_update(cfg, mem_before, centroids, idx, feat, mem_after,
                     change_ratio):
    m = cfg['memory_bank']['momentum']
    fb = mem_before['feature_bank'].clone()
    lb = mem_before['label_bank'].clone()
    fn = feat / (feat.norm(dim=1).view(-1, 1) + 1e-10)
    new = (1 - m) * fb[idx] + m * fn
    new = new / (new.norm(dim=1).view(-1, 1) + 1e-10)
    sim = centroids @ new.t()
    s = sim.sort(0, descending=True)[0]
    assert (s[0] - s[1]).min() > ARGMAX_MARGIN, 'ODC relabel near tie'
    nl = sim.argmax(0)
    ratio = (nl != lb[idx]).sum().float() / len(idx)
    assert torch.equal(ratio.reshape(1), change_ratio.reshape(1))
    # duplicate indices: sequential writes, the last occurrence wins
    for j, i in enumerate(idx.tolist()):
        fb[i] = new[j]
        lb[i] = nl[j]
    assert torch.allclose(fb, mem_after['feature_bank'], atol=1e-7)
    assert torch.equal(lb, mem_after['label_bank'])


def reweight_np(labels, k, pw=0.5):
    h = np.bincount(labels, minlength=k).astype(np.float32)
    inv = (1. / (h + 1e-10))**pw
    return torch.from_numpy(inv / inv.sum())


# ----------------------------------------------------------------- a case
def run_case(name, case, out_dir):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = case['cfg']()
    t = cfg['type']
    seeds = seeds_of(case)
    work_dir = tempfile.mkdtemp(prefix='selfsup-clustering-')
    use_gloo = t == 'ODC'
    tensors = {}

    model = build_model(cfg, seeds['init_seed'])
    bn_names = perturb_bn(model, seeds['bn_perturb_seed'])
    init_sd = clone_sd(model)
    pnames = dict(model.named_parameters())
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
    keys = [
        dict(
            key=k,
            shape=list(v.shape),
            dtype=str(v.dtype).replace('torch.', ''),
            is_parameter=k in pnames,
            requires_grad=bool(k in pnames and pnames[k].requires_grad))
        for k, v in model.state_dict().items()
    ]
    with open(os.path.join(d, 'keys.json'), 'w') as f:
        f.write('[\n' + ',\n'.join(
            json.dumps(e, separators=(',', ':')) for e in keys) + '\n]\n')

    # ---------------- data
    hook = hook_replay = None
    images = None
    if t in ('NPID', 'ODC', 'DeepCluster'):
        images = float_dataset(N_DATA[t], seeds['data_seed'])
        tensors['dataset.images'] = images
    if t in ('ODC', 'DeepCluster'):
        hook = make_dc_hook(cfg, images)
        hook_replay = make_dc_hook(cfg, images)
    odc_hooks = None
    if use_gloo:
        dist.init_process_group(
            'gloo', store=dist.HashStore(), rank=0, world_size=1)
        saved_cuda = torch.Tensor.cuda
        torch.Tensor.cuda = lambda self, *a, **k: self
        odc_hooks = (ODCHook(**ODC_HOOK), ODCHook(**ODC_HOOK))
    try:
        res = _run_case_body(name, case, cfg, t, seeds, d, model, init_sd,
                             images, hook, hook_replay, odc_hooks, tensors,
                             work_dir, bn_names)
    finally:
        if use_gloo:
            torch.Tensor.cuda = saved_cuda
            dist.destroy_process_group()
        shutil.rmtree(work_dir, ignore_errors=True)
    return res


def _run_case_body(name, case, cfg, t, seeds, d, model, init_sd, images,
                   hook, hook_replay, odc_hooks, tensors, work_dir, bn_names):
    # ---------------- DeepClusterHook.before_train (DeepCluster, ODC)
    labels_all = None
    sampler_idx = None
    mem_init = {}
    if hook is not None:
        loader, km, pp = run_before_train_hook(model, cfg, seeds, images,
                                               hook, work_dir)
        labels_all = np.asarray(loader.dataset.clustering_labels,
                                dtype=np.int64)
        assert np.array_equal(labels_all, km['labels'])
        tensors.update(hook_tensors(cfg, km, pp, labels_all))
        post = clone_sd(model)
        changed = [k for k in post if not torch.equal(post[k], init_sd[k])]
        for k in changed:
            tensors[f'hook.state.{k}'] = post[k]
        expect = {'head.fc_cls.weight'}
        if t == 'ODC':
            expect |= {'loss_weight', 'memory_bank.centroids'}
            assert torch.equal(post['loss_weight'],
                               reweight_np(labels_all, 4))
        assert set(changed) == expect, (name, changed)
        # head re-init: Normal(0, 0.01) weight; bias constant 0 (unchanged)
        assert torch.equal(post['head.fc_cls.bias'],
                           torch.zeros_like(post['head.fc_cls.bias']))
        # epoch 0 of the train sampler: DeepCluster's uniform indices set by
        # the hook; ODC's DeepClusterSampler(replace=True) draws
        sampler_idx = list(iter(loader.sampler))
        tensors[('hook.' if t == 'DeepCluster' else 'data.') +
                'sampler_indices'] = torch.tensor(sampler_idx,
                                                  dtype=torch.int64)
        if t == 'ODC':
            mem_init = mem_state(model)
            check_odc_init(km, pp, mem_init, post['memory_bank.centroids'])
            tensors['memory.init.feature_bank'] = mem_init['feature_bank']
            tensors['memory.init.label_bank'] = mem_init['label_bank']
    start_sd = clone_sd(model)
    start_mem = mem_state(model)

    # ---------------- batches
    n = N_DATA.get(t)
    datas, recs = [], []
    if t == 'NPID':
        idx_all, _ = batches_from_sampler(cfg, seeds, n)
        tensors['data.sampler_indices'] = torch.tensor(idx_all)
        for it in range(2):
            idx = idx_all[it * BATCH:(it + 1) * BATCH]
            datas.append(collate(items_npid_odc(images, idx)))
            recs.append(dict(sample_idx=torch.tensor(idx)))
    elif t == 'ODC':
        for it in range(2):
            idx = sampler_idx[it * BATCH:(it + 1) * BATCH]
            datas.append(collate(items_npid_odc(images, idx)))
            recs.append(dict(sample_idx=torch.tensor(idx)))
    elif t == 'DeepCluster':
        for it in range(2):
            idx = sampler_idx[it * BATCH:(it + 1) * BATCH]
            datas.append(collate(items_deepcluster(images, idx, labels_all)))
            recs.append(
                dict(
                    sample_idx=torch.tensor(idx),
                    clustering_label=torch.from_numpy(labels_all[idx])))
    elif t == 'RotationPred':
        for it, s in enumerate((seeds['data_seed'], seeds['data2_seed'])):
            data, rec = rotation_batch(s)
            datas.append(data)
            recs.append(rec)
    elif t == 'RelativeLoc':
        for it, (s, ps) in enumerate(
            ((seeds['data_seed'], seeds['pipeline_seed']),
             (seeds['data2_seed'], seeds['pipeline_seed'] + 1))):
            data, rec = relloc_batch(s, ps)
            datas.append(data)
            recs.append(rec)
    for it, rec in enumerate(recs):
        sfx = '' if it == 0 else '2'
        if t == 'RelativeLoc' and it == 1:
            # size budget (< 1 MB): the pipeline is covered by batch 1
            rec = {k: v for k, v in rec.items()
                   if k != 'raw' and not k.startswith('patch_offset')}
        for k, v in rec.items():
            if k == 'raw':
                tensors[f'raw{sfx}'] = v
            elif k.startswith('patch_offset'):
                tensors[f'draw{sfx}.{k}'] = v
            else:
                tensors[f'data{sfx}.{k}'] = v

    # ---------------- features on the starting model
    seeds_step = (seeds['step_seed'], seeds['step2_seed'])
    margins = [relu_margin(model, datas[0], seeds_step[0], f'{name} it1')]
    start_model = copy.deepcopy(model)
    d0 = model.data_preprocessor(copy_data(datas[0]), True)
    feats = features(model, d0[0][0])

    # ---------------- the recorded iterations
    ow = make_ow(model, case)
    groups = param_groups(model, ow)
    per_iter = []
    for it in (1, 2):
        sfx = '' if it == 1 else '2'
        data = datas[it - 1]
        if it == 2:
            margins.append(
                relu_margin(model, data, seeds_step[1], f'{name} it2'))
        sd_before = clone_sd(model)
        mem_before = mem_state(model)
        drec = DrawRecorder(model)
        cap = Capture()
        install_capture(model, cap)
        try:
            dpre, losses, parsed, grads = forward_backward(
                model, data, seeds_step[it - 1], ow)
        finally:
            drec.close()
            cap.close()
        st = clone_sd(model)
        mem = mem_state(model)
        r = dict(losses=losses, parsed=parsed, grads=grads, iter=st, mem=mem)
        # inputs as the algorithm receives them (after the preprocessor)
        for i, x in enumerate(dpre[0]):
            tensors[f'inputs{sfx}.{i}'] = x
        for k, v in losses.items():
            tensors[f'loss{sfx}.{k}'] = v.reshape(1)
        tensors[f'loss{sfx}_total'] = parsed.reshape(1)
        for k, v in grads.items():
            tensors[f'grad{sfx}.{k}'] = v
        for k, v in st.items():
            tensors[f'iter{it}.{k}'] = v
        for k, v in mem.items():
            tensors[f'memory.iter{it}.{k}'] = v
        for k, vs in drec.store.items():
            assert len(vs) == 1, (k, len(vs))
            tensors[f'draw{sfx}.{k}'] = vs[0]
        dbg = debug_of(t, cap.store, drec.store)
        for k, v in dbg.items():
            tensors[f'debug{sfx}.{k}'] = v
        # ---- plain-torch checks
        idx = None
        if t in ('NPID', 'ODC'):
            idx = torch.cat(
                [s.sample_idx.value for s in data['data_samples']])
        if t == 'NPID':
            neg = drec.store['neg_idx'][0].view(BATCH, -1)
            tensors[f'draw{sfx}.neg_idx'] = neg
            tensors[f'draw{sfx}.alias_kk'] = drec.store['alias_kk'][0].view(
                BATCH, -1)
            tensors[f'draw{sfx}.alias_b'] = drec.store['alias_b'][0].view(
                BATCH, -1)
            check_npid(dbg, losses, sd_before, st, idx, neg, cfg)
        if t in ('ODC', 'DeepCluster', 'RotationPred', 'RelativeLoc'):
            w = None
            if t == 'DeepCluster':
                w = sd_before['loss_weight']
            if t == 'ODC' and it == 2:
                w = sd_before['loss_weight']  # set by ODCHook after iter 1
            check_weighted_ce(dbg['logits'], dbg['labels'], w,
                              losses['loss'])
        if t == 'ODC':
            check_odc_update(cfg, mem_before,
                             sd_before['memory_bank.centroids'], idx,
                             dbg['neck_out'], mem, losses['change_ratio'])
            # the ODC hook of this iteration (real ODCHook.after_train_iter)
            with RedirectLog(model.memory_bank) as rl:
                odc_after_iter(model, odc_hooks[0], it)
            ah = clone_sd(model)
            amem = mem_state(model)
            check_odc_hook(it, st, mem, ah, amem, rl)
            r['after_hook'] = ah
            r['after_hook_mem'] = amem
            for k, v in ah.items():
                tensors[f'after_hook{it}.{k}'] = v
            for k, v in amem.items():
                tensors[f'memory.after_hook{it}.{k}'] = v
            tensors[f'debug{sfx}.hook_small_clusters'] = rl.small
            if rl.reassigned is not None:
                tensors[f'debug{sfx}.hook_reassigned_label_bank'] = \
                    rl.reassigned
            for j, e in enumerate(rl.events):
                tensors[f'draw{sfx}.redirect{j}.max_cluster'] = torch.tensor(
                    [e['max_cluster']])
                tensors[f'draw{sfx}.redirect{j}.sub1'] = e['sub1']
                tensors[f'draw{sfx}.redirect{j}.sub2'] = e['sub2']
            r['redirects'] = len(rl.events)
            r['small'] = rl.small.tolist()
        per_iter.append(r)

    # ---------------- write
    tensors.update(feats)
    tensors = {k: to_store(v) for k, v in tensors.items()}
    for k, v in tensors.items():
        assert torch.isfinite(v.double()).all(), k
    save_file(
        tensors,
        os.path.join(d, 'io.safetensors'),
        metadata={
            'generator':
            f'{GENERATOR} case={name} '
            f'mmselfsup={mmselfsup.__version__} torch={torch.__version__}'
            f' faiss={faiss.__version__}'
        })
    with open(os.path.join(d, 'param_groups.json'), 'w') as f:
        json.dump(groups, f, indent=1)
        f.write('\n')

    # ---------------- float64 rerun of both iterations
    err2, discrete = float64_rerun(cfg, case, t, start_model, start_mem,
                                   datas, seeds_step, tensors, odc_hooks)
    write_float32_error2(os.path.join(d, 'float32_error2.json'), err2)

    cfg_json = copy.deepcopy(cfg)
    cfg_json['batch_size'] = BATCH
    cfg_json['seeds'] = seeds
    cfg_json['optimizer'] = copy.deepcopy(OPTIMIZER)
    cfg_json['optim_wrapper'] = optim_cfg(case)
    cfg_json['fixture'] = fixture_notes(cfg, t, per_iter, discrete, margins)
    cfg_json['float32_error'] = error_summary(err2)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(cfg_json, f, indent=1)
        f.write('\n')

    # ================= validation ==========================================
    validate(name, case, cfg, t, d, seeds, init_sd, start_sd, start_mem,
             images, hook_replay, odc_hooks, datas, seeds_step, per_iter,
             tensors, feats, work_dir)

    return dict(
        case=name,
        losses={k: float(v) for k, v in per_iter[0]['losses'].items()},
        losses2={k: float(v) for k, v in per_iter[1]['losses'].items()},
        tensors=tensors,
        bn_names=bn_names,
        margins=margins,
        discrete=discrete,
        err=error_summary(err2),
        dir=d)


def check_odc_init(km, pp, mem, centroids):
    """init_memory: feature_bank = raw features / (||.|| + 1e-10) (numpy,
    float32), label_bank = k-means labels, centroids = per-cluster mean of
    the feature_bank rows."""
    lab = torch.from_numpy(km['labels'])
    assert torch.equal(mem['label_bank'], lab)
    x = pp['x']
    fb = x / (np.linalg.norm(x, axis=1).reshape(-1, 1) + 1e-10)
    assert torch.equal(mem['feature_bank'], torch.from_numpy(fb))
    for c in range(centroids.shape[0]):
        rows = mem['feature_bank'][lab == c]
        assert torch.allclose(centroids[c], rows.mean(0), atol=1e-7)


def check_odc_hook(it, st, mem, ah, amem, rl):
    """ODCHook.after_train_iter: centroids every ``centroids_update_interval``
    iterations, then small clusters every ``deal_with_small_clusters_interval``,
    then re-weight from the label histogram (always)."""
    assert torch.equal(amem['feature_bank'], mem['feature_bank'])
    assert torch.equal(ah['loss_weight'],
                       reweight_np(amem['label_bank'].numpy(), 4))
    hist = np.bincount(amem['label_bank'].numpy(), minlength=4)
    assert (hist >= 1).all()
    for k in ah:
        if k not in ('loss_weight', 'memory_bank.centroids'):
            assert torch.equal(ah[k], st[k]), k


def hook_tensors(cfg, km, pp, labels):
    """What DeepClusterHook's clustering computed, for the Rust side."""
    out = {}
    x = pp['x']
    out['hook.features'] = torch.from_numpy(x)
    pca = pp['pca']
    if pca != -1:
        mat = faiss.PCAMatrix(x.shape[1], pca, -0.5, False)
        mat.train(x)
        A = faiss.vector_to_array(mat.A).reshape(pca, x.shape[1])
        b = faiss.vector_to_array(mat.b)
        mean = faiss.vector_to_array(mat.mean)
        eig = faiss.vector_to_array(mat.eigenvalues)
        y = mat.apply_py(x)
        xb = y / (np.linalg.norm(y, axis=1)[:, np.newaxis] + 1e-10)
        assert np.array_equal(xb, pp['out']), 'PCA replay'
        out['hook.pca.mean'] = torch.from_numpy(mean)
        out['hook.pca.eigenvalues'] = torch.from_numpy(eig)
        out['hook.pca.A'] = torch.from_numpy(A)
        out['hook.pca.b'] = torch.from_numpy(b)
        out['hook.pca.out'] = torch.from_numpy(y)
        check_pca_by_hand(x, pca, mean, eig, A, b, y)
    else:
        xb = x / (np.linalg.norm(x, axis=1)[:, np.newaxis] + 1e-10)
        assert np.array_equal(xb, pp['out'])
    out['hook.xb'] = torch.from_numpy(pp['out'])
    assert np.array_equal(km['x'], pp['out'])
    k = km['k']
    traj = faiss_kmeans_trajectory(km['x'], k, km['seed'])
    assert np.array_equal(traj[-1], km['centroids'])
    init_idx = []
    for c in traj[0]:
        hit = np.where((km['x'] == c[None, :]).all(1))[0]
        assert len(hit) == 1
        init_idx.append(int(hit[0]))
    htraj, assigns, final = kmeans_by_hand(km['x'], init_idx, 20)
    assert np.array_equal(final, km['labels']), 'k-means labels by hand'
    assert np.abs(htraj - traj).max() < 1e-6, np.abs(htraj - traj).max()
    assert (km['nsplit'] == 0).all()
    out['hook.kmeans.seed'] = torch.tensor([km['seed']], dtype=torch.int64)
    out['hook.kmeans.init_idx'] = torch.tensor(init_idx, dtype=torch.int64)
    out['hook.kmeans.centroids_per_iter'] = torch.from_numpy(traj)
    out['hook.kmeans.assign_per_iter'] = torch.from_numpy(
        assigns.astype(np.int64))
    out['hook.kmeans.obj'] = torch.from_numpy(km['obj'].astype(np.float32))
    out['hook.kmeans.centroids'] = torch.from_numpy(km['centroids'])
    out['hook.labels'] = torch.from_numpy(labels)
    KMEANS_EXACT.append(bool(np.array_equal(htraj, traj)))
    return out


KMEANS_EXACT = []


def check_pca_by_hand(x, pca, mean, eig, A, b, y):
    """faiss PCAMatrix(d_in, d_out, eigen_power=-0.5) in float64 by hand:
    mean; scatter matrix C = X^T X - n mean mean^T (NOT divided by n);
    eigen-decomposition, eigenvalues descending; A = rows of the top d_out
    eigenvectors scaled by eigenvalue^-0.5; b = -A mean; y = A x + b."""
    X = x.astype(np.float64)
    n = X.shape[0]
    mu = X.mean(0)
    C = X.T @ X - n * np.outer(mu, mu)
    w, V = np.linalg.eigh(C)
    order = np.argsort(w)[::-1]
    w, V = w[order], V[:, order]
    assert np.allclose(mean, mu, atol=1e-6)
    assert np.allclose(eig, w, rtol=1e-4, atol=1e-4 * w.max())
    Ah = V[:, :pca].T * (w[:pca]**-0.5)[:, None]
    sign = np.sign((Ah * A).sum(1))  # eigenvector signs are arbitrary
    Ah = Ah * sign[:, None]
    assert np.allclose(Ah, A, rtol=1e-3, atol=1e-4 * np.abs(A).max()), \
        np.abs(Ah - A).max()
    assert np.allclose(-Ah @ mu, b * sign * sign, atol=1e-3)
    yh = X @ Ah.T - Ah @ mu
    assert np.allclose(yh, y, atol=1e-3), np.abs(yh - y).max()


def debug_of(t, s, draws):
    d = {}
    if t == 'NPID':
        d['feature'] = nn.functional.normalize(s['neck'][0])
        d['pos_logits'] = s['head_in.pos'][0]
        d['neg_logits'] = s['head_in.neg'][0]
        return d
    d['logits'] = s['logits'][0]
    d['labels'] = s['head_in.label'][0]
    if t == 'ODC':
        d['neck_out'] = s['neck'][0]
    if t == 'RelativeLoc':
        d['backbone_img1'] = s['backbone'][0]
        d['backbone_img2'] = s['backbone'][1]
        d['neck_out'] = s['neck'][0]
    return d


# ------------------------------------------------------------- float64
ERROR2_PREFIXES = ('loss', 'grad', 'iter1', 'memory.iter1', 'after_hook1',
                   'memory.after_hook1', 'loss2', 'grad2', 'iter2',
                   'memory.iter2', 'after_hook2', 'memory.after_hook2')


def sig4(x):
    return float(f'{x:.4g}')


def split_key(key):
    for pre in sorted(ERROR2_PREFIXES, key=len, reverse=True):
        if key.startswith(pre + '.'):
            return pre, key[len(pre) + 1:]
    return None, None


def float64_rerun(cfg, case, t, start_model, start_mem, datas, seeds_step,
                  tensors32, odc_hooks):
    """Both training iterations again in float64 from the starting state
    (after the DeepCluster/ODC hook; memories cast to float64), with the
    float32 inputs (after the preprocessor) cast to float64, the same seeds
    before each loss() (same draws: asserted) and one SGD for both."""
    m = copy.deepcopy(start_model).double()
    if start_mem:
        set_mem_state(m, {
            'feature_bank': start_mem['feature_bank'].double(),
            'label_bank': start_mem['label_bank']
        })
        mb = m.memory_bank

        def centroids_idx_f64(cinds):
            # ODCMemory._compute_centroids_idx allocates float32 zeros; the
            # same code in float64 (error estimate only)
            c = torch.zeros((len(cinds), mb.feat_dim), dtype=torch.float64)
            for i, ci in enumerate(cinds):
                idx = np.where(mb.label_bank.numpy() == ci)[0]
                c[i, :] = mb.feature_bank[idx, :].mean(dim=0)
            return c

        mb._compute_centroids_idx = centroids_idx_f64
    ow = make_ow(m, case)
    f64 = {}
    discrete = {}
    for it in (1, 2):
        sfx = '' if it == 1 else '2'
        d32 = start_model.data_preprocessor(copy_data(datas[it - 1]), True)
        inputs = [x.double() for x in d32[0]]
        drec = DrawRecorder(m)
        try:
            torch.manual_seed(seeds_step[it - 1])
            losses = m(inputs, d32[1], mode='loss')
        finally:
            drec.close()
        for k, vs in drec.store.items():
            ref = tensors32[f'draw{sfx}.{k}']
            assert torch.equal(vs[0].view(ref.shape).to(ref.dtype), ref), k
        parsed, _ = m.parse_losses(losses)
        for k, v in losses.items():
            f64[f'loss{sfx}.{k}'] = v.detach().reshape(1)
        ow.backward(parsed)
        for k, p in m.named_parameters():
            if p.grad is not None:
                f64[f'grad{sfx}.{k}'] = p.grad.detach().clone()
        ow.step()
        ow.zero_grad()
        for k, v in clone_sd(m).items():
            f64[f'iter{it}.{k}'] = v
        for k, v in mem_state(m).items():
            f64[f'memory.iter{it}.{k}'] = v
        if t == 'ODC':
            with quiet():
                odc_after_iter(m, odc_hooks[0], it)
            for k, v in clone_sd(m).items():
                f64[f'after_hook{it}.{k}'] = v
            for k, v in mem_state(m).items():
                f64[f'memory.after_hook{it}.{k}'] = v
    res = {p: {} for p in ERROR2_PREFIXES}
    for key, v64 in f64.items():
        pre, k = split_key(key)
        v32 = tensors32[key]
        assert v32.shape == v64.shape, key
        if not v64.dtype.is_floating_point:
            same = torch.equal(v32, v64)
            if not same:
                discrete[key] = int((v32 != v64).sum())
            continue
        err = float((v32.double() - v64).abs().max())
        scale = float(v64.abs().max())
        res[pre][k] = [sig4(err / max(scale, 1e-30)), sig4(err), sig4(scale)]
    out = dict(
        note='float32 fixture (io.safetensors) vs the same two training '
        'iterations run in float64 from the same starting state (after the '
        'DeepCluster/ODC hook; ODC memories cast to float64), inputs after '
        'the preprocessor cast to float64, same seeds and draws, same SGD: '
        'per tensor [rel, abs, scale] with abs = max|f32 - f64|, scale = '
        'max|f64|, rel = abs / max(scale, 1e-30); 4 significant digits; '
        'integer entries left out (discrete_mismatch lists integer tensors '
        'that differ, none expected)',
        discrete_mismatch=discrete)
    for pre in ERROR2_PREFIXES:
        if res[pre]:
            out[pre] = dict(sorted(res[pre].items()))
    return out, discrete


def write_float32_error2(path, err):
    pres = [p for p in ERROR2_PREFIXES if p in err]
    lines = [
        '{', f' "note": {json.dumps(err["note"])},',
        f' "discrete_mismatch": {json.dumps(err["discrete_mismatch"])},'
    ]
    for i, pre in enumerate(pres):
        items = [f'  {json.dumps(k)}: {json.dumps(v)}'
                 for k, v in err[pre].items()]
        end = ',' if i + 1 < len(pres) else ''
        lines.append(f' {json.dumps(pre)}: {{')
        lines.append(',\n'.join(items))
        lines.append(' }' + end)
    lines.append('}')
    text = '\n'.join(lines) + '\n'
    assert json.loads(text) == err
    with open(path, 'w') as f:
        f.write(text)


def error_summary(err):
    out = {}
    for pre in ERROR2_PREFIXES:
        if pre not in err:
            continue
        items = [(v[0], k) for k, v in err[pre].items() if v[2] >= 1e-10]
        if items:
            r, k = max(items)
            out[pre] = [k, r]
    return out


def fixture_notes(cfg, t, per_iter, discrete, margins):
    notes = dict(
        views='inputs.* are the tensors loss() receives (after the data '
        'preprocessor)',
        relu_margin=[[w, sig4(v)] for w, v in margins])
    if t in ('NPID', 'ODC', 'DeepCluster'):
        notes['data_preprocessor'] = (
            'the config block is the real one; the fixture feeds float '
            'images through an identity preprocessor (mean 0, std 1, no '
            'BGR swap)')
    if t in ('ODC', 'DeepCluster'):
        notes['deepcluster_hook'] = dict(
            clustering=dict(DC_CLUSTERING if t == 'DeepCluster' else
                            ODC_CLUSTERING),
            unif_sampling=t == 'DeepCluster',
            reweight=t == 'ODC',
            reweight_pow=0.5,
            init_memory=t == 'ODC',
            extract='eval mode: model.neck([backbone(x)[-1]]) flattened')
    if t == 'ODC':
        notes['odc_hook'] = dict(ODC_HOOK)
        notes['odc_hook_small_clusters'] = [r['small'] for r in per_iter]
        notes['odc_hook_redirects'] = [r['redirects'] for r in per_iter]
        notes['memory_not_in_state_dict'] = dict(
            feature_bank=dict(shape=[16, 8], dtype='float32'),
            label_bank=dict(shape=[16], dtype='int64'))
    return notes


# ------------------------------------------------------------- validation
def validate(name, case, cfg, t, d, seeds, init_sd, start_sd, start_mem,
             images, hook_replay, odc_hooks, datas, seeds_step, per_iter,
             tensors, feats, work_dir):
    ckpt = torch.load(
        os.path.join(d, 'model.pth'), map_location='cpu', weights_only=True)

    def fresh(extra):
        m = build_model(cfg, seeds['init_seed'] + extra)
        r = m.load_state_dict(ckpt['state_dict'], strict=True)
        assert not r.missing_keys and not r.unexpected_keys
        assert_same(clone_sd(m), init_sd, 'load')
        return m

    # replay A: the hook, then mmengine's train_step twice, no patches
    m2 = fresh(999)
    if hook_replay is not None:
        run_before_train_hook(m2, cfg, seeds, images, hook_replay, work_dir)
    assert_same(clone_sd(m2), start_sd, f'{name} hook replay')
    ms = mem_state(m2)
    for k in ms:
        assert torch.equal(ms[k], start_mem[k]), (name, k)
    ow = make_ow(m2, case)
    for it in (1, 2):
        torch.manual_seed(seeds_step[it - 1])
        log = m2.train_step(copy_data(datas[it - 1]), ow)
        r = per_iter[it - 1]
        assert torch.equal(
            torch.as_tensor(log['loss']).reshape(1),
            r['parsed'].reshape(1)), (name, it, log['loss'], r['parsed'])
        assert_same(clone_sd(m2), r['iter'], f'{name} replay A iter{it}')
        ms = mem_state(m2)
        for k in ms:
            assert torch.equal(ms[k], r['mem'][k]), (name, it, k)
        if t == 'ODC':
            odc_after_iter(m2, odc_hooks[1], it)
            assert_same(clone_sd(m2), r['after_hook'],
                        f'{name} replay A hook{it}')
            ms = mem_state(m2)
            for k in ms:
                assert torch.equal(ms[k], r['after_hook_mem'][k]), (name, k)

    # replay B: by hand, grads and losses
    m3 = fresh(555)
    if hook_replay is not None:
        m3.load_state_dict(start_sd, strict=True)
        set_mem_state(m3, start_mem)
    d0 = m3.data_preprocessor(copy_data(datas[0]), True)
    for k, v in features(m3, d0[0][0]).items():
        assert torch.equal(v, feats[k]), (name, k)
    ow3 = make_ow(m3, case)
    for it in (1, 2):
        _, losses, parsed, grads = forward_backward(m3, datas[it - 1],
                                                    seeds_step[it - 1], ow3)
        r = per_iter[it - 1]
        for k, v in losses.items():
            assert torch.equal(v, r['losses'][k]), (name, it, k)
        assert set(grads) == set(r['grads'])
        for k, v in grads.items():
            assert torch.equal(v, r['grads'][k]), (name, it, 'grad', k)
        assert_same(clone_sd(m3), r['iter'], f'{name} replay B iter{it}')
        if t == 'ODC':
            odc_after_iter(m3, odc_hooks[1], it)
            assert_same(clone_sd(m3), r['after_hook'], f'{name} B hook{it}')


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--cases', nargs='*', default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='ERROR')
    MMLogger.get_current_instance().setLevel('ERROR')
    os.makedirs(args.out, exist_ok=True)

    names = args.cases or list(CASES)
    results = []
    for n in names:
        results.append(run_case(n, CASES[n], args.out))
    print()
    for r in results:
        sizes = {
            f: os.path.getsize(os.path.join(r['dir'], f))
            for f in sorted(os.listdir(r['dir']))
        }
        print(f'{r["case"]:<18} losses={r["losses"]} losses2={r["losses2"]} '
              f'tensors={len(r["tensors"])} bytes={sum(sizes.values())} '
              f'{sizes}')
        print(f'{"":<18} relu margins {r["margins"]} discrete f64 '
              f'mismatches {r["discrete"]}')
        print(f'{"":<18} f32 vs f64 worst: {r["err"]}')
    print(f'k-means by hand bit-exact vs faiss: {KMEANS_EXACT}')
    if args.list:
        for r in results:
            print(f'\n== {r["case"]}/io.safetensors')
            for k, v in r['tensors'].items():
                print(f'  {k:<60} {str(v.dtype).replace("torch.", ""):<8}'
                      f' {list(v.shape)}')
            print(f'  BN perturbed: {r["bn_names"]}')
    print('all validations passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
