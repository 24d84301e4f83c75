"""The offline image renderer: the embedded default when no model is configured.

A deterministic Pillow landscape drawn from the prompt's words (palette from
colour and time words like dawn, night, sea, forest, or from the prompt's
hash), so a fresh instance makes images without an account anywhere. Same
prompt, same bytes; different prompts, clearly different images.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
import logging
import math
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from fedisocial.studio.ai.images import GeneratedImage

if TYPE_CHECKING:
    from fedisocial.config import Settings

__all__ = ["LOCAL_MODEL", "LocalImageProvider", "render_local"]

log = logging.getLogger(__name__)

LOCAL_MODEL = "fedisocial-local-1"

# -- the offline renderer ---------------------------------------------------------

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class _Palette:
    sky_top: RGB
    sky_bottom: RGB
    light: RGB
    land_far: RGB
    land_near: RGB
    accent: RGB
    night: bool = False
    sea: bool = False
    bokeh: int = 0


_THEMES = {
    "dawn": _Palette((96, 130, 200), (255, 196, 160), (255, 244, 214), (178, 146, 190),
                     (62, 52, 98), (255, 170, 150)),
    "dusk": _Palette((58, 34, 102), (255, 128, 84), (255, 214, 140), (150, 70, 110),
                     (40, 18, 52), (255, 150, 90)),
    "night": _Palette((8, 12, 38), (44, 56, 112), (236, 236, 218), (40, 46, 90),
                      (8, 10, 28), (160, 170, 255), night=True),
    "sea": _Palette((110, 180, 228), (222, 240, 250), (255, 250, 224), (70, 150, 196),
                    (10, 56, 104), (120, 210, 220), sea=True),
    "forest": _Palette((140, 196, 228), (232, 242, 218), (255, 248, 214), (128, 176, 118),
                       (18, 58, 40), (200, 230, 140)),
    "desert": _Palette((112, 166, 218), (250, 222, 172), (255, 246, 210), (232, 182, 122),
                       (150, 84, 46), (240, 160, 90)),
    "snow": _Palette((164, 196, 230), (240, 246, 252), (255, 255, 246), (212, 222, 238),
                     (104, 126, 160), (190, 220, 255)),
    "fire": _Palette((60, 18, 22), (250, 128, 48), (255, 220, 150), (150, 48, 30),
                     (46, 10, 12), (255, 170, 60)),
    "city": _Palette((22, 10, 52), (200, 56, 150), (255, 200, 240), (70, 40, 110),
                     (14, 8, 30), (90, 230, 255), night=True, bokeh=22),
    "space": _Palette((4, 4, 18), (60, 24, 90), (240, 230, 255), (50, 30, 80),
                      (6, 4, 16), (190, 120, 255), night=True, bokeh=8),
}  # fmt: skip
_WORDS = {
    "dawn": "dawn sunrise morning daybreak",
    "dusk": "sunset dusk evening twilight",
    "night": "night moon moonlight star stars midnight dark",
    "sea": "sea ocean wave waves beach lake water river coast harbor harbour island",
    "forest": "forest tree trees woods jungle garden meadow valley spring",
    "desert": "desert sand dune dunes canyon summer",
    "snow": "snow winter ice frost mountain mountains glacier",
    "fire": "fire volcano lava autumn flame dragon",
    "city": "city neon cyberpunk street lights party",
    "space": "space galaxy cosmic nebula planet universe",
}
_THEME_WORDS = {word: theme for theme, words in _WORDS.items() for word in words.split()}
_COLOURS: dict[str, RGB] = {
    "red": (214, 48, 56), "orange": (246, 140, 40), "yellow": (246, 214, 60),
    "gold": (230, 180, 60), "golden": (230, 180, 60), "green": (60, 170, 90),
    "teal": (30, 150, 150), "cyan": (60, 200, 220), "blue": (50, 100, 220),
    "purple": (130, 70, 190), "violet": (150, 90, 220), "pink": (240, 130, 180),
    "magenta": (210, 50, 170), "white": (240, 240, 240), "black": (20, 20, 26),
    "grey": (130, 130, 136), "gray": (130, 130, 136), "silver": (190, 196, 206),
    "brown": (130, 84, 50), "turquoise": (64, 200, 190), "crimson": (170, 20, 50),
}  # fmt: skip


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))  # fmt: skip


def _hls(h: float, lightness: float, saturation: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, lightness, saturation)
    return round(r * 255), round(g * 255), round(b * 255)


def _shift(colour: RGB, hue: float) -> RGB:
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    return _hls(h + hue, lightness, s)


def _palette(words: list[str], rng: random.Random) -> _Palette:
    """A theme from the prompt's words (dawn, sea, night…), else one derived from the hash."""
    theme = next((_THEME_WORDS[w] for w in words if w in _THEME_WORDS), None)
    if theme is None:
        h, off = rng.random(), rng.choice((0.08, 0.33, 0.5, -0.1))
        night = rng.random() < 0.25
        palette = _Palette(
            _hls(h, 0.12 if night else 0.38, 0.5), _hls(h + 0.06, 0.35 if night else 0.8, 0.6),
            _hls(h + 0.1, 0.9, 0.9), _hls(h + off, 0.55, 0.35), _hls(h + off, 0.16, 0.45),
            _hls(h + off + 0.05, 0.7, 0.8), night=night, sea=rng.random() < 0.3,
        )  # fmt: skip
    else:
        palette = _THEMES[theme]
    found = {_THEME_WORDS[w] for w in words if w in _THEME_WORDS}
    if "night" in found and not palette.night:  # "sea at night": the sea, by night
        dark = _THEMES["night"]
        palette = replace(palette, night=True, sky_top=_mix(palette.sky_top, dark.sky_top, 0.8),
                          sky_bottom=_mix(palette.sky_bottom, dark.sky_bottom, 0.7),
                          land_far=_mix(palette.land_far, dark.land_far, 0.6),
                          land_near=_mix(palette.land_near, dark.land_near, 0.6),
                          light=dark.light)  # fmt: skip
    if "sea" in found:
        palette = replace(palette, sea=True)
    hue = (rng.random() - 0.5) * 0.08  # same theme, different prompts: not quite the same hues
    bokeh = palette.bokeh or (rng.randint(5, 14) if rng.random() < 0.5 else 0)
    palette = replace(palette, sky_top=_shift(palette.sky_top, hue),
                      sky_bottom=_shift(palette.sky_bottom, hue),
                      land_far=_shift(palette.land_far, hue),
                      land_near=_shift(palette.land_near, hue),
                      bokeh=bokeh)  # fmt: skip
    colours = [_COLOURS[w] for w in words if w in _COLOURS]
    if colours:
        palette = replace(palette, accent=colours[0],
                          land_far=_mix(palette.land_far, colours[0], 0.45),
                          land_near=_mix(palette.land_near, _mix(colours[0], (0, 0, 0), 0.6), 0.45),
                          sky_bottom=_mix(palette.sky_bottom, colours[-1], 0.3))  # fmt: skip
    return palette


def _soft(image: Image.Image, box: tuple[int, int, int, int], colour: RGB, blur: float,
          draw: Callable[[ImageDraw.ImageDraw, int, int], None]) -> None:  # fmt: skip
    """Paint ``colour`` through a blurred mask drawn on a patch (cheaper than full size)."""
    x0, y0, x1, y1 = box
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw(ImageDraw.Draw(mask), x0, y0)
    if blur:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    image.paste(colour, box, mask)


def _sky(p: _Palette, w: int, h: int) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((w, h), Image.Resampling.BICUBIC)
    middle = _mix(_mix(p.sky_top, p.sky_bottom, 0.55), p.accent, 0.15)
    return ImageOps.colorize(gradient, p.sky_top, p.sky_bottom, middle).convert("RGB")


def _glow(
    image: Image.Image, cx: float, cy: float, radius: float, colour: RGB, strength: float
) -> None:
    size = max(2, round(radius * 2))
    glow = ImageOps.invert(Image.radial_gradient("L")).resize((size, size))
    # The gradient reaches 0 in the corners, not on the circle: rescale so the patch's
    # edges are 0 (else its square shows).
    glow = glow.point(lambda v: round(255 * strength * max(0.0, (v - 76) / 179) ** 2.2))
    image.paste(colour, (round(cx - radius), round(cy - radius)), glow)


def _body(image: Image.Image, cx: float, cy: float, r: float, p: _Palette) -> None:
    """The sun, or a crescent moon at night."""
    pad = round(r * 0.2) + 2
    box = (round(cx - r) - pad, round(cy - r) - pad, round(cx + r) + pad, round(cy + r) + pad)

    def disc(draw: ImageDraw.ImageDraw, x0: int, y0: int) -> None:
        draw.ellipse((cx - r - x0, cy - r - y0, cx + r - x0, cy + r - y0), fill=255)
        if p.night:
            dx, dy = r * 0.45, -r * 0.2
            draw.ellipse((cx - r + dx - x0, cy - r + dy - y0, cx + r + dx - x0,
                          cy + r + dy - y0), fill=0)  # fmt: skip

    _soft(image, box, p.light, max(1.0, r * 0.03), disc)


def _stars(image: Image.Image, rng: random.Random, p: _Palette, horizon: int) -> None:
    draw = ImageDraw.Draw(image)
    w = image.width
    for _ in range(rng.randint(70, 160)):
        x, y = rng.uniform(0, w), rng.uniform(0, horizon) ** 1.1 / horizon**0.1
        colour = _mix(p.sky_top, p.light, rng.uniform(0.35, 1.0))
        size = rng.choice((0, 0, 0, 1, 1, 2)) * w / 1024
        draw.ellipse((x - size, y - size, x + size, y + size), fill=colour)


def _bokeh(image: Image.Image, rng: random.Random, p: _Palette) -> Image.Image:
    w, h = image.size
    layer = Image.new("RGBA", (w // 4, h // 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(p.bokeh):
        r = rng.uniform(0.015, 0.06) * layer.width
        x, y = rng.uniform(0, layer.width), rng.uniform(0, layer.height * 0.75)
        colour = _mix(p.accent, p.light, rng.random())
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(*colour, rng.randint(40, 110)))
    layer = layer.filter(ImageFilter.GaussianBlur(1.5)).resize((w, h), Image.Resampling.BICUBIC)
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _ridge(rng: random.Random, w: int, base: float, amplitude: float) -> list[tuple[float, float]]:
    waves = [(rng.uniform(1, 3.5) * (k + 1) * math.tau / w, rng.uniform(0, math.tau), weight)
             for k, weight in enumerate((0.55, 0.3, 0.15))]  # fmt: skip
    step = max(4, w // 96)
    return [(x, base - amplitude * sum(wt * math.sin(f * x + ph) for f, ph, wt in waves))
            for x in range(0, w + step, step)]  # fmt: skip


def _hills(image: Image.Image, rng: random.Random, p: _Palette, top: float, layers: int) -> None:
    w, h = image.size
    for k in range(layers):
        t = k / max(1, layers - 1)
        base = h * (top + (0.9 - top) * t**0.9)
        amplitude = h * (0.09 - 0.035 * t) * rng.uniform(0.6, 1.3)
        colour = _mix(_mix(p.land_far, p.land_near, t), p.sky_bottom, 0.5 * (1 - t) ** 1.5)
        ridge = _ridge(rng, w, base, amplitude)
        y0 = max(0, int(min(y for _, y in ridge)) - 4)

        def fill(draw: ImageDraw.ImageDraw, _x0: int, oy: int, ridge: Any = ridge) -> None:
            draw.polygon([(x, y - oy) for x, y in ridge] + [(w, h - oy), (0, h - oy)], fill=255)

        _soft(image, (0, y0, w, h), colour, 1.2, fill)


def _sea(image: Image.Image, rng: random.Random, p: _Palette, horizon: int, sun_x: float) -> None:
    w, h = image.size
    water = Image.linear_gradient("L").resize((w, h - horizon))
    top, bottom = _mix(p.land_far, p.sky_bottom, 0.35), p.land_near
    image.paste(ImageOps.colorize(water, top, bottom).convert("RGB"), (0, horizon))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(60, 110)):  # short wave crests, denser towards the horizon
        depth = rng.random() ** 1.4
        y = horizon + (h - horizon) * depth**1.5
        half = w * (0.015 + 0.05 * depth) * rng.uniform(0.5, 1.5)
        x = rng.uniform(-half, w + half)
        colour = _mix(_mix(top, bottom, depth), p.light, 0.18)
        bow = 2 + 6 * depth
        draw.arc((x - half, y - bow, x + half, y + bow), 200, 340, fill=colour,
                 width=max(1, round(w / 512 * (1 + 2 * depth))))  # fmt: skip
    for _ in range(rng.randint(14, 24)):  # the light's reflection
        depth = rng.random()
        y = horizon + (h - horizon) * depth**1.3
        half = w * (0.01 + 0.06 * depth) * rng.uniform(0.5, 1.5)
        x = sun_x + rng.uniform(-1, 1) * w * 0.03 * (1 + depth)
        draw.line((x - half, y, x + half, y), fill=_mix(p.light, top, depth * 0.6),
                  width=max(1, round(w / 400)))  # fmt: skip


def _grain(image: Image.Image, rng: random.Random) -> Image.Image:
    """±2 levels of noise: texture, and no banding in the gradients."""
    tile = Image.frombytes("L", (256, 256), rng.randbytes(256 * 256)).point(lambda v: v % 5)
    noise = Image.new("L", image.size)
    for x in range(0, image.width, 256):
        for y in range(0, image.height, 256):
            noise.paste(tile, (x, y))
    return ImageChops.add(image, Image.merge("RGB", (noise, noise, noise)), offset=-2)


def _normalize(prompt: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def render_local(prompt: str, width: int = 1024, height: int = 1024) -> bytes:
    """A PNG landscape drawn from the prompt: same prompt, same bytes; ~0.1-0.2 s at 1024²."""
    text = _normalize(prompt)
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest(), "big"))
    p = _palette(re.findall(r"[^\W\d_]+", text), rng)
    w, h = width, height
    image = _sky(p, w, h)
    horizon = round(h * rng.uniform(0.52, 0.64))
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.14, 0.4) * h
    r = rng.uniform(0.05, 0.1) * min(w, h)
    if p.night:
        _stars(image, rng, p, horizon)
    _glow(image, cx, cy, r * 5, p.light, 0.35 if p.night else 0.6)
    _body(image, cx, cy, r, p)
    if p.bokeh:
        image = _bokeh(image, rng, p)
    if p.sea:
        _hills(image, rng, p, horizon / h - 0.04, 1)
        _sea(image, rng, p, horizon, cx)
    else:
        _hills(image, rng, p, horizon / h - 0.08, rng.randint(3, 5))
    image = _grain(image, rng)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=3)
    return out.getvalue()


def _local_size(size: str) -> tuple[int, int]:
    """WIDTHxHEIGHT from the settings, scaled down to fit 1024x1024 (speed)."""
    width, _, height = size.partition("x")
    w, h = int(width), int(height)
    scale = min(1.0, 1024 / max(w, h, 1))
    return max(64, round(w * scale)), max(64, round(h * scale))


class LocalImageProvider:
    """The embedded default: offline, deterministic, no account needed."""

    name = "local"
    model = LOCAL_MODEL

    def __init__(self, settings: Settings) -> None:
        self.size = _local_size(settings.ai_images_size)

    async def aclose(self) -> None:
        return None

    async def generate(self, prompt: str) -> GeneratedImage:
        data = await asyncio.to_thread(render_local, prompt, *self.size)
        log.debug("rendered %d bytes locally for a %d-character prompt", len(data), len(prompt))
        return GeneratedImage(data, "image/png", self.name, self.model, None)
