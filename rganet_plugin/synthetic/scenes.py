"""Camera scenes of the generated datasets: a background wider than the image, a colour cast
and a sensor noise field per camera."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .people import _hsv


def _camera(rng: np.random.Generator, h: int, w: int) -> Dict[str, Any]:
    """Background scene (wider than the image, cropped per image), colour cast and a sensor noise
    field (cropped at a random offset per image)."""
    pad = 24
    bw = w + 2 * pad
    base = np.array(_hsv(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.85)), np.float32)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(base, (h, bw, 3)) * (0.85 + 0.3 * yy)
    bg = np.array(bg, dtype=np.float32)
    # scene blocks: facades / windows / signs
    for _ in range(int(rng.integers(4, 10))):
        x0 = int(rng.integers(0, bw - 8))
        y0 = int(rng.integers(0, int(h * 0.7)))
        bw_ = int(rng.integers(6, max(8, bw // 2)))
        bh_ = int(rng.integers(6, max(8, h // 3)))
        col = np.array(_hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.2, 0.95)), np.float32)
        bg[y0:y0 + bh_, x0:x0 + bw_] = 0.5 * bg[y0:y0 + bh_, x0:x0 + bw_] + 0.5 * col
    floor_y = int(h * rng.uniform(0.72, 0.88))
    floor = np.array(_hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.7)), np.float32)
    bg[floor_y:] = floor * (0.9 + 0.2 * yy[floor_y:])
    cast = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    sigma = float(rng.uniform(3.0, 9.0))
    noise = rng.standard_normal(size=(2 * h, 2 * w, 3), dtype=np.float32) * sigma
    return {"bg": bg, "pad": pad, "cast": cast, "noise": noise}
