"""Golden outputs of Pillow's and OpenCV's resize for `src/imaging/testdata/resize_golden.json`.

These are what mmcv's `imresize(img, size, interpolation, backend='pillow'|'cv2')` calls.
Run with the reference environment (`tools/reference/setup.sh`: Pillow 13.0.0, NumPy 1.26.4,
opencv-python 4.10.0.84), as `tools/fixtures.py` does:

    .venv-reference/bin/python crates/selfsup-data/scripts/gen_resize_golden.py > crates/selfsup-data/src/imaging/testdata/resize_golden.json

The file records the library versions; the pixel data are the same with OpenCV 5.0.0, which
made the first version of the file.
"""
import json

import cv2
import numpy as np
import PIL
from PIL import Image

rng = np.random.default_rng(0)
inputs = [
    rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8),
    # A smooth gradient plus noise, more typical of photos.
    np.clip(
        np.add.outer(np.linspace(0, 200, 11), np.linspace(0, 50, 13))[..., None]
        + np.array([0, 30, 60])
        + rng.integers(-20, 21, size=(11, 13, 3)),
        0,
        255,
    ).astype(np.uint8),
]
sizes = [(3, 2), (4, 9), (17, 12)]  # (w, h): down, mixed, up
pil = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
}
ocv = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}

cases = []
for i, img in enumerate(inputs):
    for w, h in sizes:
        for name, code in pil.items():
            out = np.asarray(Image.fromarray(img).resize((w, h), code))
            cases.append(dict(input=i, backend="pillow", interpolation=name, w=w, h=h, data=out.reshape(-1).tolist()))
        for name, code in ocv.items():
            out = cv2.resize(img, (w, h), interpolation=code)
            cases.append(dict(input=i, backend="cv2", interpolation=name, w=w, h=h, data=out.reshape(-1).tolist()))

print(
    json.dumps(
        dict(
            versions=dict(pillow=PIL.__version__, opencv=cv2.__version__),
            inputs=[dict(w=int(im.shape[1]), h=int(im.shape[0]), data=im.reshape(-1).tolist()) for im in inputs],
            cases=cases,
        ),
        separators=(",", ":"),
    )
)
