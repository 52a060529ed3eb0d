"""The reference's clustering step on the CPU, timed like
``cargo run --release -p selfsup --example clustering``: MMSelfSup's
``preprocess_features`` (faiss ``PCAMatrix(d, pca, eigen_power=-0.5)``,
then L2) and ``run_kmeans`` (faiss ``Clustering``, 20 iterations, with
``IndexFlatL2`` in place of the GPU index), on random features of the same
structure (4k blob centres in a 64-dimensional subspace, ReLU, noise 0.5).

    python tools/bench_clustering_faiss.py [N D K PCA]

Needs ``faiss-cpu`` and ``numpy`` (tools/reference/requirements.txt pins
faiss-cpu 1.15.1). ARCHITECTURE.md quotes both programs' numbers.
"""
import sys
import time

import faiss
import numpy as np


def main():
    args = [int(a) for a in sys.argv[1:5]]
    n, d, k, pca = (args + [100000, 2048, 10000, 256][len(args):])
    rng = np.random.default_rng(0)
    blobs = 4 * min(k, n)
    basis = rng.standard_normal((64, d), dtype=np.float32)
    centres = rng.standard_normal((blobs, 64), dtype=np.float32) @ basis
    x = centres[rng.integers(0, blobs, n)]
    x += rng.standard_normal((n, d), dtype=np.float32) * 0.5
    np.maximum(x, 0, out=x)
    print(f'{n} x {d} features, k = {k}, PCA to {pca}, faiss '
          f'{faiss.__version__} ({faiss.omp_get_max_threads()} threads)')

    t = time.perf_counter()
    mat = faiss.PCAMatrix(d, pca, -0.5, False)
    mat.train(x)
    y = mat.apply_py(x)
    y = y / (np.linalg.norm(y, axis=1)[:, np.newaxis] + 1e-10)
    t_pca = time.perf_counter() - t
    print(f'PCA + whitening + L2: {t_pca:.1f} s')

    t = time.perf_counter()
    clus = faiss.Clustering(pca, k)
    clus.seed = 0
    clus.niter = 20
    clus.max_points_per_centroid = 10000000
    index = faiss.IndexFlatL2(pca)
    clus.train(y, index)
    _, labels = index.search(y, 1)
    t_km = time.perf_counter() - t
    stats = clus.iteration_stats
    objs = [stats.at(i).obj for i in range(stats.size())]
    print(f'k-means, 20 iterations: {t_km:.1f} s ({t_km / 20:.2f} s per '
          f'iteration; objective {objs[0]:.1f} -> {objs[-1]:.1f})')
    print(f'total {t_pca + t_km:.1f} s')


if __name__ == '__main__':
    main()
