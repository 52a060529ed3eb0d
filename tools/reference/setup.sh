#!/usr/bin/env bash
# Creates the reference environment of the fixture generators in tools/: MMSelfSup 1.0.0,
# mmcls 1.0.0rc6, mmpretrain 1.2.0, mmengine 0.10.7, mmcv-lite 2.0.1 on torch 2.9.0 (run on
# the CPU), every package pinned.
#
#   tools/reference/setup.sh [VENV_DIR]      (default: .venv-reference at the repository root)
#   PYTHON=python3.11 tools/reference/setup.sh
#
# Needs only a Python 3.10-3.12 interpreter with the venv module (tested with 3.11; numpy
# 1.26.4 has no wheels for 3.13) and access to PyPI. About 7 GB, mostly the torch wheel and
# its nvidia-* dependencies (PyPI's default Linux torch build; it runs on the CPU here), and
# a few minutes. Re-running it on an existing VENV_DIR reinstalls the pins into it.
#
# Then:  .venv-reference/bin/python tools/fixtures.py --check
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${1:-$ROOT/.venv-reference}
PYTHON=${PYTHON:-python3}
PIP_VERSION=26.3

"$PYTHON" - <<'EOF'
import sys
v = sys.version_info[:2]
if not ((3, 10) <= v <= (3, 12)):
    sys.exit(f"tools/reference/setup.sh: Python {v[0]}.{v[1]} is not supported "
             "(numpy 1.26.4 needs 3.9-3.12, faiss-cpu 1.15.1 3.10+); "
             "set PYTHON=python3.11")
EOF

echo "creating $VENV with $("$PYTHON" --version 2>&1)"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q "pip==$PIP_VERSION"
# 1. everything except the OpenMMLab packages, with normal dependency resolution: the pins
#    are a complete, consistent set, so pip only checks them.
"${PIP[@]}" install -q -r "$HERE/requirements.txt"
# 2. the OpenMMLab packages, exactly these, without their declared dependencies (see the
#    comment in requirements-nodeps.txt).
"${PIP[@]}" install -q --no-deps -r "$HERE/requirements-nodeps.txt"

# Import check: every package the generators use, with the versions they report.
"$VENV/bin/python" - <<'EOF'
import warnings
warnings.filterwarnings('ignore')  # mmcv-lite warns that it has no compiled ops
import cv2, faiss, mmcls, mmcv, mmengine, mmpretrain, mmselfsup, numpy, PIL, safetensors, torch
from mmselfsup.registry import MODELS
from mmselfsup.utils import register_all_modules
register_all_modules()
versions = dict(torch=torch.__version__, numpy=numpy.__version__, mmengine=mmengine.__version__,
                mmcv=mmcv.__version__, mmcls=mmcls.__version__, mmselfsup=mmselfsup.__version__,
                mmpretrain=mmpretrain.__version__, opencv=cv2.__version__, pillow=PIL.__version__,
                safetensors=safetensors.__version__, faiss=faiss.__version__)
print('reference environment ok:', ', '.join(f'{k} {v}' for k, v in versions.items()),
      f'| {len(MODELS.module_dict)} mmselfsup models registered')
assert torch.__version__.split('+')[0] == '2.9.0' and numpy.__version__ == '1.26.4'
assert mmselfsup.__version__ == '1.0.0' and mmcv.__version__ == '2.0.1'
EOF
echo "$VENV is ready"
