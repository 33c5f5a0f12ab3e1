"""Cheap checks for unreadable images, and the policy the dataset loaders apply to them.

Real ReID datasets copied from mirrors now and then hold a zero-byte file, a half-downloaded
JPEG or an HTML error page saved as ``.jpg``. fast-reid only finds out when a data-loader worker
tries to decode it, hours into a run. The loaders of this plugin check every file when they scan
a split instead:

* :func:`check_image` opens the file with PIL, which parses the header only, and runs
  ``Image.verify()`` (a no-op for JPEG, a chunk/CRC walk for PNG). For JPEG it also looks for the
  end-of-image marker in the last bytes of the file; only when that marker is missing (a file
  cut short) is the image fully decoded to confirm. About 40 microseconds per good JPEG: 30k images
  take a second or two.
* :func:`filter_corrupt_images` applies the policy (``DATASETS.CORRUPT_IMAGES``, the loaders'
  ``corrupt_images=`` kwarg): ``"skip"`` (default) drops the files with one warning giving the
  count and the first few paths, ``"error"`` raises :class:`CorruptImageError` naming them,
  ``"off"`` does not check at all.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable, List, Optional, Sequence, Tuple

from PIL import Image, UnidentifiedImageError

#: File extensions read as images (lower case): the dataset loaders and the tools' folder reader.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

logger = logging.getLogger(__name__)

__all__ = [
    "CORRUPT_POLICIES",
    "CorruptImageError",
    "IMAGE_EXTENSIONS",
    "check_image",
    "find_corrupt_images",
    "filter_corrupt_images",
    "normalize_corrupt_policy",
    "read_image",
]

#: Accepted values of ``corrupt_images`` / ``DATASETS.CORRUPT_IMAGES``.
CORRUPT_POLICIES = ("skip", "error", "off")

_JPEG_EOI = b"\xff\xd9"
_TAIL_BYTES = 64
_MAX_LISTED = 5


class CorruptImageError(ValueError):
    """One or more image files cannot be read. ``paths`` lists ``(path, reason)`` pairs."""

    def __init__(self, message: str, paths: Sequence[Tuple[str, str]] = ()):
        super().__init__(message)
        self.paths = list(paths)


def normalize_corrupt_policy(policy: Optional[str]) -> str:
    """``None`` -> ``"skip"``; anything not in :data:`CORRUPT_POLICIES` is a ``ValueError``."""
    if policy is None:
        return "skip"
    value = str(policy).strip().lower()
    if value not in CORRUPT_POLICIES:
        raise ValueError(
            f"corrupt_images / DATASETS.CORRUPT_IMAGES must be one of {list(CORRUPT_POLICIES)}, "
            f"got {policy!r}"
        )
    return value


def _jpeg_tail_ok(path: str, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read()
    # Some writers pad after the marker with zeros or a newline; tolerate that.
    return tail.rstrip(b"\x00\r\n\t ").endswith(_JPEG_EOI)


def check_image(path: str, full: bool = False) -> Optional[str]:
    """Return ``None`` when ``path`` looks like a readable image, else a short reason.

    ``full=True`` decodes every pixel (slow: use it for a one-off audit, not at scan time).
    """
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return f"cannot stat ({exc.strerror or exc})"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as img:
            fmt = img.format
            width, height = img.size
            img.verify()
        if width <= 0 or height <= 0:
            return f"invalid size {width}x{height}"
        need_decode = full
        if fmt == "JPEG" and not _jpeg_tail_ok(path, size):
            need_decode = True
        if need_decode:
            with Image.open(path) as img:
                img.load()
    except UnidentifiedImageError:
        return "not an image PIL can identify"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def find_corrupt_images(paths: Iterable[str], full: bool = False) -> List[Tuple[str, str]]:
    """``(path, reason)`` for every path that :func:`check_image` rejects, in input order."""
    bad = []
    for p in paths:
        reason = check_image(p, full=full)
        if reason is not None:
            bad.append((p, reason))
    return bad


def _format_bad(bad: Sequence[Tuple[str, str]], limit: int) -> str:
    lines = [f"  {p}  ({reason})" for p, reason in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(lines)


def filter_corrupt_images(items: Sequence, policy: Optional[str] = "skip", *, what: str = "dataset",
                          log: Optional[logging.Logger] = None, full: bool = False) -> list:
    """Drop (``"skip"``) or reject (``"error"``) items whose image is unreadable.

    ``items`` are fast-reid tuples ``(img_path, pid, camid, ...)`` or bare paths. ``what`` names
    the dataset and split in the messages (e.g. ``"OccludedDuke query (/data/Occluded_Duke/query)"``).
    Returns the kept items in their original order.
    """
    policy = normalize_corrupt_policy(policy)
    if policy == "off" or not items:
        return list(items)
    paths = [it if isinstance(it, (str, os.PathLike)) else it[0] for it in items]
    bad = find_corrupt_images([os.fspath(p) for p in paths], full=full)
    if not bad:
        return list(items)
    if policy == "error":
        raise CorruptImageError(
            f"{what}: {len(bad)} unreadable image file(s) (corrupt_images='error'):\n"
            f"{_format_bad(bad, 20)}\n"
            "Replace or delete them, or set DATASETS.CORRUPT_IMAGES 'skip' to drop them.",
            bad,
        )
    (log or logger).warning(
        "%s: skipped %d unreadable image file(s) of %d; first ones:\n%s",
        what, len(bad), len(items), _format_bad(bad, _MAX_LISTED),
    )
    bad_set = {p for p, _ in bad}
    return [it for it, p in zip(items, paths) if os.fspath(p) not in bad_set]


def read_image(path: str, mode: str = "RGB") -> Image.Image:
    """Open and fully decode an image in ``mode``; an unreadable file raises
    :class:`CorruptImageError` naming the path (instead of PIL's bare message)."""
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"cannot read image {path}: {type(exc).__name__}: {exc}",
                                [(str(path), str(exc))]) from exc
