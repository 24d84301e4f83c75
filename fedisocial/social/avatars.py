"""Default avatar and header images, drawn from the username.

Every new account gets a distinct picture right away (Mastodon shows a grey
silhouette otherwise), so profiles look alive on remote servers before the
user uploads anything.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
from functools import lru_cache

from PIL import Image, ImageDraw

__all__ = ["default_avatar_png", "default_header_png"]

_GRID = 5


def _palette(seed: str) -> tuple[tuple[int, int, int], tuple[int, int, int], bytes]:
    digest = hashlib.sha256(seed.encode()).digest()
    hue = digest[0] / 255

    def rgb(h: float, lightness: float, saturation: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hls_to_rgb(h % 1, lightness, saturation)
        return round(r * 255), round(g * 255), round(b * 255)

    return rgb(hue, 0.55, 0.6), rgb(hue + 0.5, 0.93, 0.35), digest


@lru_cache(maxsize=256)
def default_avatar_png(seed: str, size: int = 400) -> bytes:
    """A symmetric 5x5 identicon, 400x400 PNG."""
    ink, paper, digest = _palette(seed)
    image = Image.new("RGB", (size, size), paper)
    draw = ImageDraw.Draw(image)
    cell = size // (_GRID + 1)
    margin = (size - cell * _GRID) // 2
    for row in range(_GRID):
        for col in range((_GRID + 1) // 2):
            if digest[1 + row * 3 + col] % 2:
                continue
            for mirrored in {col, _GRID - 1 - col}:
                x, y = margin + mirrored * cell, margin + row * cell
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=ink)
    return _png(image)


@lru_cache(maxsize=256)
def default_header_png(seed: str, width: int = 1500, height: int = 500) -> bytes:
    """A soft diagonal gradient in the colours of the avatar, 1500x500 PNG."""
    ink, paper, _ = _palette(seed)
    small = Image.new("RGB", (32, 32))
    for x in range(32):
        for y in range(32):
            t = (x + y) / 62
            small.putpixel(
                (x, y), tuple(round(a + (b - a) * t) for a, b in zip(paper, ink, strict=True))
            )
    return _png(small.resize((width, height), Image.Resampling.BICUBIC))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
