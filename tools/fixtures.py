#!/usr/bin/env python3
"""Rebuild every committed fixture from the reference generators; check or record SHA-256 sums.

    python3 tools/fixtures.py --check [--python PY] [--keep]
    python3 tools/fixtures.py --write [--python PY]
    python3 tools/fixtures.py --write --sums-only

Run from anywhere; paths are relative to the repository root. PY is the reference
interpreter (default: ``.venv-reference/bin/python``, made by ``tools/reference/setup.sh``).
This script itself needs only the standard library.

Both modes run every fixture generator (``GENERATORS`` below) with PY, at low priority
(``nice -n 10``), one after the other, each writing into a temporary directory that mirrors
the repository layout (``<tmp>/tests/fixtures/...``, ``<tmp>/crates/...``). The committed
files are never read by the generators, except ``gen_layer_decay_fixture.py``, which is
pointed at the regenerated ``mae_tiny_normpix/config.json``.

``--check``
    compares, for every path listed in ``tests/fixtures/SHA256SUMS``, the sha256 of the
    regenerated file and of the committed file with the listed one. It also fails when a
    committed fixture file (anything under ``FIXTURE_DIRS``) is not listed, when a generator
    produces a file that is not listed, or when a listed file is not produced. Every problem
    is printed; the exit status is 1 if there is any.

``--write``
    copies the regenerated files over the committed ones (reporting which changed) and
    rewrites ``tests/fixtures/SHA256SUMS`` (``sha256sum`` format, paths relative to the
    repository root, sorted). ``--sums-only`` skips the generators and hashes the committed
    files as they are.

Every generator is byte-deterministic (fixed seeds, one thread, torch's CPU kernels pinned to
AVX2 by ``tools/pin_cpu_kernels.py``), so every file is compared byte for byte: there is no
weaker comparison. ``sha256sum -c tests/fixtures/SHA256SUMS`` (from the repository root)
checks the committed files without Python.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMS = "tests/fixtures/SHA256SUMS"
DEFAULT_PYTHON = ".venv-reference/bin/python"

# Committed fixture files: everything under these directories (recursive), except SUMS.
FIXTURE_DIRS = [
    "tests/fixtures",
    "crates/selfsup-data/tests/testdata",
    "crates/selfsup-data/src/imaging/testdata",
]

# (name, argv after the interpreter, file that receives stdout or None). "{out}" is the
# temporary mirror of the repository root. Order matters: gen_layer_decay_fixture.py reads
# the config written by gen_fixtures.py.
GENERATORS = [
    ("gen_fixtures.py", ["tools/gen_fixtures.py", "--out", "{out}/tests/fixtures"], None),
    (
        "gen_fixtures_contrastive.py",
        ["tools/gen_fixtures_contrastive.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_clustering.py",
        ["tools/gen_fixtures_clustering.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_mim.py",
        ["tools/gen_fixtures_mim.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_beit.py",
        ["tools/gen_fixtures_beit.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_cae.py",
        ["tools/gen_fixtures_cae.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_milan_eva.py",
        ["tools/gen_fixtures_milan_eva.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_tokenizers.py",
        ["tools/gen_fixtures_tokenizers.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_dino.py",
        ["tools/gen_fixtures_dino.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_spark.py",
        ["tools/gen_fixtures_spark.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_itpn.py",
        ["tools/gen_fixtures_itpn.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_fixtures_finetune.py",
        ["tools/gen_fixtures_finetune.py", "--out", "{out}/tests/fixtures"],
        None,
    ),
    (
        "gen_layer_decay_fixture.py",
        [
            "tools/gen_layer_decay_fixture.py",
            "--out",
            "{out}/tests/fixtures/layer_decay",
            "--model-config",
            "{out}/tests/fixtures/mae_tiny_normpix/config.json",
        ],
        None,
    ),
    (
        "gen_preprocessor_fixture.py",
        ["tools/gen_preprocessor_fixture.py", "--out", "{out}/tests/fixtures/preprocessors"],
        None,
    ),
    (
        "gen_transform_fixtures.py",
        [
            "tools/gen_transform_fixtures.py",
            "--out",
            "{out}/crates/selfsup-data/tests/testdata/transforms_golden.json",
        ],
        None,
    ),
    (
        "gen_random_erasing_fixture.py",
        [
            "tools/gen_random_erasing_fixture.py",
            "--out",
            "{out}/crates/selfsup-data/tests/testdata/random_erasing_golden.json",
        ],
        None,
    ),
    (
        "gen_rand_augment_fixture.py",
        [
            "tools/gen_rand_augment_fixture.py",
            "--out",
            "{out}/crates/selfsup-data/tests/testdata/rand_augment_golden.json",
        ],
        None,
    ),
    (
        "gen_mask_fixtures.py",
        ["tools/gen_mask_fixtures.py", "--out", "{out}/crates/selfsup-data/tests/testdata/mim_golden.json"],
        None,
    ),
    (
        "gen_resize_golden.py",
        ["crates/selfsup-data/scripts/gen_resize_golden.py"],
        "{out}/crates/selfsup-data/src/imaging/testdata/resize_golden.json",
    ),
]


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_under(base: str) -> list[str]:
    """Fixture files (repo-relative, '/'-separated) found under ``base`` for FIXTURE_DIRS."""
    found = []
    for d in FIXTURE_DIRS:
        top = os.path.join(base, d)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for f in filenames:
                rel = os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/")
                if rel != SUMS:
                    found.append(rel)
    return sorted(found)


def read_sums() -> dict[str, str]:
    path = os.path.join(ROOT, SUMS)
    if not os.path.exists(path):
        return {}
    sums = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            digest, sep, name = line.partition("  ")
            if not sep or len(digest) != 64:
                raise SystemExit(f"{SUMS}:{n}: not in sha256sum format: {line!r}")
            sums[name] = digest
    return sums


def write_sums(paths: list[str]) -> None:
    lines = [f"{sha256(os.path.join(ROOT, p))}  {p}\n" for p in sorted(paths)]
    with open(os.path.join(ROOT, SUMS), "w") as f:
        f.writelines(lines)
    print(f"wrote {SUMS}: {len(lines)} files")


def resolve_python(arg: str | None) -> str:
    py = arg or os.path.join(ROOT, DEFAULT_PYTHON)
    if not (os.path.isfile(py) and os.access(py, os.X_OK)) and shutil.which(py) is None:
        raise SystemExit(
            f"reference interpreter {py!r} not found: run tools/reference/setup.sh "
            f"(creates {DEFAULT_PYTHON}) or pass --python"
        )
    return py


def run_generators(py: str, out: str, nice: int, logs: str) -> None:
    total = time.monotonic()
    for name, argv, stdout_to in GENERATORS:
        argv = [a.format(out=out) for a in argv]
        cmd = (["nice", "-n", str(nice)] if nice and shutil.which("nice") else []) + [py] + argv
        log_path = os.path.join(logs, name + ".log")
        t0 = time.monotonic()
        with open(log_path, "w") as log:
            if stdout_to is not None:
                target = stdout_to.format(out=out)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=log).returncode
            else:
                rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        dt = time.monotonic() - t0
        print(f"  {name:<30} {dt:6.1f} s  rc={rc}", flush=True)
        if rc != 0:
            with open(log_path) as f:
                tail = f.read()[-3000:]
            raise SystemExit(f"{name} failed (exit {rc}); last output:\n{tail}")
    print(f"  {'all generators':<30} {time.monotonic() - total:6.1f} s")


def check(out: str) -> int:
    sums = read_sums()
    committed = files_under(ROOT)
    generated = files_under(out)
    problems = []
    if not sums:
        problems.append(f"{SUMS} is missing or empty (run --write)")
    for p in sorted(sums):
        listed = sums[p]
        gen = os.path.join(out, p)
        com = os.path.join(ROOT, p)
        if not os.path.exists(gen):
            problems.append(f"NOT PRODUCED   {p}: listed, but no generator wrote it")
        elif sha256(gen) != listed:
            problems.append(f"REGENERATED≠   {p}: regenerated sha256 {sha256(gen)} != listed {listed}")
        if not os.path.exists(com):
            problems.append(f"MISSING        {p}: listed, but not in the work tree")
        elif sha256(com) != listed:
            problems.append(f"COMMITTED≠     {p}: committed sha256 {sha256(com)} != listed {listed}")
    for p in committed:
        if p not in sums:
            problems.append(f"NOT LISTED     {p}: committed fixture file missing from {SUMS}")
    for p in generated:
        if p not in sums and p not in committed:
            problems.append(f"NEW            {p}: produced by a generator but neither committed nor listed")
    for line in problems:
        print(line)
    print(f"{len(sums)} listed files, {len(committed)} committed, {len(generated)} regenerated: "
          + ("all identical" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def install(out: str) -> list[str]:
    generated = files_under(out)
    changed = []
    for p in generated:
        src, dst = os.path.join(out, p), os.path.join(ROOT, p)
        if not os.path.exists(dst) or sha256(src) != sha256(dst):
            changed.append(p)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
    stale = [p for p in files_under(ROOT) if p not in set(generated)]
    for p in changed:
        print(f"updated {p}")
    for p in stale:
        print(f"NOT PRODUCED by any generator (left alone, not listed): {p}")
    print(f"{len(generated)} files regenerated, {len(changed)} changed")
    return generated


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="regenerate and compare with SHA256SUMS")
    mode.add_argument("--write", action="store_true", help="regenerate, install, rewrite SHA256SUMS")
    ap.add_argument("--python", help=f"reference interpreter (default: {DEFAULT_PYTHON})")
    ap.add_argument("--sums-only", action="store_true", help="with --write: only hash the committed files")
    ap.add_argument("--nice", type=int, default=10, help="nice level of the generators (default 10, 0: off)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = ap.parse_args()

    if args.sums_only:
        if not args.write:
            ap.error("--sums-only goes with --write")
        write_sums(files_under(ROOT))
        return 0

    py = resolve_python(args.python)
    tmp = tempfile.mkdtemp(prefix="selfsup-fixtures-")
    out, logs = os.path.join(tmp, "repo"), os.path.join(tmp, "logs")
    os.makedirs(out)
    os.makedirs(logs)
    print(f"regenerating with {py} into {out}")
    try:
        run_generators(py, out, args.nice, logs)
        if args.check:
            return check(out)
        write_sums(install(out))
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
