"""Images in and out: checking, cleaning, labelling and storing them.

Every image, uploaded or generated, goes through :func:`process_image` before
it is stored: it is recognised by its content (JPEG, PNG or WebP only), its
declared pixel count is checked before any decoding (decompression bombs), it
is decoded in full (broken and truncated files are refused) and downscaled to
at most :data:`MAX_STORED_PIXELS` (JPEG: by the decoder itself, ``draft``),
turned upright from its EXIF orientation, converted to sRGB from its ICC
profile, and re-encoded without EXIF, GPS, ICC or any other metadata. It leaves
with width, height, a blurhash and a thumbnail. AI media gets an XMP packet
with the IPTC digital source type ``trainedAlgorithmicMedia`` and the prompt,
so the label travels with the file.

A decoded image takes width x height x 3-4 bytes (a 40 megapixel PNG: 160 MB),
so :class:`ImagePipeline` runs :func:`process_image` in a thread, a few at a
time per process, and hands the freed memory back to the system afterwards.

Files live in a :class:`MediaStore` under content-hash keys
(``ab/abcdef….png``); :class:`LocalMediaStore` keeps them in ``data_dir/media``.
:func:`process_image` is pure and CPU-bound: callers run it in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import hashlib
import io
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from fedisocial.ap.render import TRAINED_ALGORITHMIC_MEDIA
from fedisocial.errors import BadRequest, NotFound
from fedisocial.urls import Urls

if TYPE_CHECKING:
    from fedisocial.config import Settings

__all__ = [
    "ACCEPTED_TYPES",
    "CACHE_CONTROL",
    "MAX_STORED_PIXELS",
    "AiLabel",
    "ImagePipeline",
    "InvalidImage",
    "LocalMediaStore",
    "MediaStore",
    "ProcessedImage",
    "blurhash",
    "check_alt_text",
    "media_type_for_key",
    "process_image",
    "read_xmp",
    "store_processed",
    "thumbnail_size",
    "xmp_packet",
]

#: Cache-Control for /media/… answers: keys are content hashes, so files never change.
CACHE_CONTROL = "public, max-age=31536000, immutable"
THUMBNAIL_SIZE = 400
#: bigger images are stored downscaled to this many pixels (Mastodon's 3840x2160)
MAX_STORED_PIXELS = 3840 * 2160

#: Pillow format → (media type, file extension) of what we accept and store.
_ACCEPTED = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"),
             "WEBP": ("image/webp", "webp")}  # fmt: skip
_EXTENSIONS = {"jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "jfif": "JPEG", "png": "PNG",
               "webp": "WEBP"}  # fmt: skip
_MEDIA_TYPES = {ext: media_type for media_type, ext in _ACCEPTED.values()}
#: the media types an upload may have (the Mastodon instance API lists them)
ACCEPTED_TYPES = tuple(media_type for media_type, _ in _ACCEPTED.values())
_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"),
    (b"BM", "BMP"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
)  # fmt: skip
_HINTS = {"SVG": " (SVG files can carry scripts)", "GIF": " (convert animations to a video)"}
_KEY = re.compile(r"^([0-9a-f]{2})/(\1[0-9a-f]{62})(\.small)?\.(jpg|png|webp)$")
_XML_FORBIDDEN = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_XMP_PROMPT = 8000  # characters: keeps the packet well inside JPEG's 64 KB APP1 segment


class InvalidImage(BadRequest):
    """An image we refuse: not JPEG/PNG/WebP, too big, broken or hostile."""


@dataclass(frozen=True)
class AiLabel:
    """What made an AI image: written into the file's XMP by :func:`process_image`."""

    prompt: str
    model: str
    provider: str


@dataclass(frozen=True)
class ProcessedImage:
    """A cleaned image, ready to store: metadata stripped, measured, thumbnailed."""

    data: bytes
    media_type: str
    extension: str
    width: int
    height: int
    blurhash: str
    thumbnail: bytes
    sha256: str
    thumbnail_media_type: str = "image/webp"
    thumbnail_extension: str = "webp"

    @property
    def key(self) -> str:
        """Storage key of the image: ``ab/abcdef….png``."""
        return f"{self.sha256[:2]}/{self.sha256}.{self.extension}"

    @property
    def thumbnail_key(self) -> str:
        """Storage key of the thumbnail: ``ab/abcdef….small.webp``."""
        return f"{self.sha256[:2]}/{self.sha256}.small.{self.thumbnail_extension}"


# -- checking -----------------------------------------------------------------


def _sniff(data: bytes) -> str:
    """The file format by its first bytes: a Pillow format name or a description."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return "AVIF" if brand in (b"avif", b"avis") else "HEIC" if brand[:3] == b"hei" or \
            brand == b"mif1" else "video"  # fmt: skip
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in head:
        return "SVG"
    if head.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return "unknown"


def _refuse_format(found: str) -> InvalidImage:
    if found == "unknown":
        return InvalidImage(
            "This file is not an image we can read: upload a JPEG, PNG or WebP image."
        )
    hint = _HINTS.get(found, "")
    return InvalidImage(f"{found} files are not accepted{hint}: upload a JPEG, PNG or WebP image.")


def _check_extension(filename: str | None, found: str) -> None:
    """Refuse a file whose name says one format and whose content says another."""
    if not filename or "." not in filename.strip(". "):
        return
    extension = filename.rsplit(".", 1)[1].lower()
    if _EXTENSIONS.get(extension) == found:
        return
    right = _ACCEPTED[found][1]
    raise InvalidImage(
        f"{filename!r} is named .{extension} but its content is a {_NAMES[found]} image: "
        f"rename it to .{right} or upload the right file."
    )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InvalidImage(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); "
            f"the largest accepted is {max_pixels / 1e6:g} megapixels."
        )


def _stored_size(width: int, height: int) -> tuple[int, int]:
    """The size we keep: the same, or scaled down to MAX_STORED_PIXELS."""
    if width * height <= MAX_STORED_PIXELS:
        return width, height
    scale = math.sqrt(MAX_STORED_PIXELS / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _load_scaled(image: Image.Image) -> Image.Image:
    """Decode at most once in full; JPEG decodes straight to 1/2, 1/4 or 1/8 (``draft``)."""
    target = _stored_size(*image.size)
    if target != image.size:
        image.draft(None, target)  # JPEG only: the DCT scales while decoding
    image.load()
    factor = min(image.width // target[0], image.height // target[1])
    if factor > 1:  # a box reduction first, so the full-size pixels go before Lanczos runs
        image = _replace(image, image.reduce(factor))
    if image.size == target:
        return image
    with image:
        return image.resize(target, Image.Resampling.LANCZOS)


def _decode(data: bytes, found: str, max_pixels: int) -> Image.Image:
    """Open, check the declared size, verify, then decode (downscaled if it is big)."""
    name = _NAMES[found]
    try:
        with Image.open(io.BytesIO(data), formats=[found]) as probe:
            _check_pixels(*probe.size, max_pixels)  # before a single pixel is decoded
            probe.verify()
        return _load_scaled(Image.open(io.BytesIO(data), formats=[found]))
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own global limit, hit at open() before our check; with warnings
        # turned into errors (pytest) the warning arrives here as an exception too.
        raise InvalidImage(
            f"The {name} image declares more pixels than the {max_pixels / 1e6:g} megapixels "
            "accepted (a decompression bomb?)."
        ) from exc
    except Exception as exc:  # hostile input: Pillow may fail in many ways, all mean "broken"
        raise InvalidImage(
            f"The {name} image is damaged or incomplete and cannot be decoded ({exc})."
        ) from exc


def check_alt_text(text: str | None, max_length: int) -> str:
    """The alt text of an image people upload, stripped; BadRequest unless it has 1 to
    ``max_length`` characters.

    Mastodon lets people post without one; we do not, because people who cannot see
    the image have nothing else (generated images get one from their prompt).
    """
    alt = (text or "").strip()
    if not alt:
        raise BadRequest(
            "Describe the image for people who cannot see it: alt text is required "
            f"(1 to {max_length} characters)."
        )
    if len(alt) > max_length:
        raise BadRequest(
            f"The alt text has {len(alt)} characters; at most {max_length} are allowed."
        )
    return alt


# -- cleaning -----------------------------------------------------------------


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, once ``old`` (if it is another image) has given its pixels back."""
    if new is not old:
        old.close()
    return new


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _in_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """The pixels converted from the file's ICC profile to sRGB; without a usable one, as is.

    Browsers read untagged images as sRGB, so once converted the profile can go:
    it would otherwise travel (and identify a device or a workflow) with every copy.
    """
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    output = "RGB" if image.mode == "CMYK" else image.mode
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode=output)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # a broken or mismatched profile: keep the numbers, drop the profile
    assert converted is not None
    return converted


def _upright(image: Image.Image, found: str) -> Image.Image:
    """Apply the EXIF orientation and the ICC profile; convert to a mode the format stores;
    drop all metadata. ``image`` is consumed (closed if replaced)."""
    icc = image.info.get("icc_profile")
    with contextlib.suppress(Exception):  # a corrupt EXIF block: keep the pixels as they are
        ImageOps.exif_transpose(image, in_place=True)
    image = _replace(image, _in_srgb(image, icc))
    if found == "JPEG":
        target = "L" if image.mode == "L" else "RGB"
    elif _has_alpha(image):
        target = "RGBA"
    elif found == "PNG" and image.mode in ("1", "L", "P", "RGB"):
        target = image.mode
    else:
        target = "RGB"
    if image.mode != target:
        image = _replace(image, image.convert(target))
    image.info = {}
    return image


def _is_lossless_webp(data: bytes) -> bool:
    return data[12:16] == b"VP8L" or (data[12:16] == b"VP8X" and b"VP8L" in data[:4096])


def _encode(image: Image.Image, found: str, xmp: bytes | None, lossless: bool = False) -> bytes:
    out = io.BytesIO()
    extra: dict[str, bytes] = {}
    if found == "JPEG":
        if xmp:
            extra["xmp"] = xmp
        image.save(out, "JPEG", quality=88, optimize=True, progressive=True, **extra)
    elif found == "PNG":
        info = PngImagePlugin.PngInfo()
        if xmp:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        # Not optimize=True: 10x slower for < 1% smaller files (measured at 1024x1024).
        image.save(out, "PNG", compress_level=6, pnginfo=info, **extra)
    else:
        if xmp:
            extra["xmp"] = xmp
        image.save(out, "WEBP", quality=85, method=4, lossless=lossless, **extra)
    return out.getvalue()


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The size of the thumbnail of a ``width`` x ``height`` image (400 px on the long side)."""
    scale = min(1.0, THUMBNAIL_SIZE / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _small(image: Image.Image) -> Image.Image:
    """A new image of at most 400 px on the long side, made without a full-size copy."""
    size = thumbnail_size(image.width, image.height)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _thumbnail(small: Image.Image, found: str, xmp: bytes | None) -> tuple[bytes, str, str]:
    """JPEG for JPEG photos, WebP otherwise (keeps alpha)."""
    out = io.BytesIO()
    extra: dict[str, bytes] = {"xmp": xmp} if xmp else {}
    if found == "JPEG":
        small.save(out, "JPEG", quality=80, optimize=True, **extra)
        return out.getvalue(), "image/jpeg", "jpg"
    if small.mode not in ("RGB", "RGBA"):
        with small.convert("RGBA" if _has_alpha(small) else "RGB") as converted:
            converted.save(out, "WEBP", quality=80, method=4, **extra)
    else:
        small.save(out, "WEBP", quality=80, method=4, **extra)
    return out.getvalue(), "image/webp", "webp"


# -- blurhash (https://github.com/woltapp/blurhash/blob/master/Algorithm.md) --

_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(_B83[value // 83 ** (length - i - 1) % 83] for i in range(length))


def _to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    return round((v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055) * 255)


def blurhash(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of ``image``, computed on a copy of at most 32 px (as Mastodon shows it).

    Our own few lines rather than ``blurhash-python``: that package reads pixels with
    ``Image.getdata``, deprecated in Pillow 13 and removed in Pillow 14.
    """
    small = image.copy()
    small.thumbnail((32, 32), Image.Resampling.BOX)
    if _has_alpha(small):  # transparent pixels would count as black: show them on white
        rgba = small.convert("RGBA")
        small = Image.new("RGB", rgba.size, (255, 255, 255))
        small.paste(rgba, mask=rgba.getchannel("A"))
    width, height = small.size
    raw = small.convert("RGB").tobytes()
    table = [_to_linear(v) for v in range(256)]
    pixels = [table[v] for v in raw]
    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)] for i in range(x_components)]
    cos_y = [[math.cos(math.pi * j * y / height) for y in range(height)]
             for j in range(y_components)]  # fmt: skip
    factors: list[tuple[float, float, float]] = []
    for j in range(y_components):
        for i in range(x_components):
            r = g = b = 0.0
            for y in range(height):
                cy, row = cos_y[j][y], y * width * 3
                for x in range(width):
                    basis = cy * cos_x[i][x]
                    p = row + x * 3
                    r += basis * pixels[p]
                    g += basis * pixels[p + 1]
                    b += basis * pixels[p + 2]
            scale = (1 if i == j == 0 else 2) / (width * height)
            factors.append((r * scale, g * scale, b * scale))
    dc, ac = factors[0], factors[1:]
    result = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    maximum = max((abs(c) for f in ac for c in f), default=0.0)
    quantised = max(0, min(82, math.floor(maximum * 166 - 0.5))) if ac else 0
    result += _base83(quantised, 1)
    result += _base83((_to_srgb(dc[0]) << 16) + (_to_srgb(dc[1]) << 8) + _to_srgb(dc[2]), 4)
    top = (quantised + 1) / 166

    def q(c: float) -> int:
        return max(0, min(18, math.floor(math.copysign(abs(c / top) ** 0.5, c) * 9 + 9.5)))

    for r, g, b in ac:
        result += _base83(q(r) * 19 * 19 + q(g) * 19 + q(b), 2)
    return result


# -- XMP ------------------------------------------------------------------------


def xmp_packet(label: AiLabel) -> bytes:
    """An XMP packet labelling AI media: IPTC DigitalSourceType, prompt, model."""
    prompt = _XML_FORBIDDEN.sub("", label.prompt)[:_MAX_XMP_PROMPT]
    tool = _XML_FORBIDDEN.sub("", f"{label.model} ({label.provider}) via fedisocial")
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"\n'
        f"    xmp:CreatorTool={quoteattr(tool)}>\n"
        "   <dc:description><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{escape(prompt)}</rdf:li>'
        "</rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def read_xmp(data: bytes) -> str | None:
    """The XMP packet of a JPEG, PNG or WebP file, or None (for tests and tools)."""
    found = _sniff(data)
    if found not in _ACCEPTED:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=[found]) as image:
            raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    except Exception:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None


# -- the pipeline -------------------------------------------------------------


def process_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    ai: AiLabel | None = None,
    filename: str | None = None,
) -> ProcessedImage:
    """Check, clean, measure and (for AI media) label an image; raise InvalidImage if refused.

    Pure and CPU-bound (tens of milliseconds for a 1024x1024 image): run it in a thread.
    """
    if not data:
        raise InvalidImage("The file is empty.")
    if len(data) > max_bytes:
        raise InvalidImage(
            f"The image is {len(data) / 1e6:.1f} MB; "
            f"the largest accepted is {max_bytes / 1e6:g} MB."
        )
    found = _sniff(data)
    if found not in _ACCEPTED:
        raise _refuse_format(found)
    _check_extension(filename, found)
    with _upright(_decode(data, found, max_pixels), found) as clean:
        xmp = xmp_packet(ai) if ai else None
        cleaned = _encode(clean, found, xmp, lossless=found == "WEBP" and _is_lossless_webp(data))
        with _small(clean) as small:
            thumbnail, thumbnail_type, thumbnail_ext = _thumbnail(small, found, xmp)
            hashed = blurhash(small)
        width, height = clean.size
    media_type, extension = _ACCEPTED[found]
    return ProcessedImage(
        data=cleaned, media_type=media_type, extension=extension, width=width, height=height,
        blurhash=hashed, thumbnail=thumbnail, sha256=hashlib.sha256(cleaned).hexdigest(),
        thumbnail_media_type=thumbnail_type, thumbnail_extension=thumbnail_ext,
    )  # fmt: skip


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _process_and_release(
    data: bytes, max_bytes: int, max_pixels: int, ai: AiLabel | None, filename: str | None
) -> ProcessedImage:
    try:
        return process_image(data, max_bytes=max_bytes, max_pixels=max_pixels, ai=ai,
                             filename=filename)  # fmt: skip
    finally:
        # Each thread decodes into its own malloc arena, and glibc keeps the freed
        # pages there: four big decodes left 1.6 GB behind. Give them back.
        trim = _malloc_trim()
        if trim is not None:
            trim(0)


class ImagePipeline:
    """Runs :func:`process_image` in threads, at most ``concurrency`` at once per process."""

    def __init__(self, *, max_bytes: int, max_pixels: int, concurrency: int) -> None:
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self._slots = asyncio.Semaphore(concurrency)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImagePipeline:
        return cls(max_bytes=settings.media_max_bytes, max_pixels=settings.media_max_pixels,
                   concurrency=settings.media_concurrent_decodes)  # fmt: skip

    async def process(
        self, data: bytes, *, ai: AiLabel | None = None, filename: str | None = None
    ) -> ProcessedImage:
        """Check, clean and measure an image (see :func:`process_image`) when a slot is free."""
        async with self._slots:
            return await asyncio.to_thread(
                _process_and_release, data, self.max_bytes, self.max_pixels, ai, filename
            )


# -- storage --------------------------------------------------------------------


def media_type_for_key(key: str) -> str:
    """Content-Type of a stored file, from its key's extension (the /media route uses it)."""
    return _MEDIA_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has the shape we mint: ``ab/ab…(62 hex)[.small].ext``. No ``..``."""
    return _KEY.fullmatch(key) is not None


class MediaStore(Protocol):
    """Where media files live; keys are content-hash paths (``ab/abcdef….png``)."""

    async def put(self, key: str, data: bytes, media_type: str) -> None: ...

    async def get(self, key: str) -> bytes:
        """The file's bytes; NotFound if absent (or if the key is not one of ours)."""
        ...

    def url(self, key: str) -> str:
        """The public URL remote servers and browsers fetch it from."""
        ...

    async def delete(self, key: str) -> None: ...


class LocalMediaStore:
    """Media in a local folder (``data_dir/media``), written atomically."""

    def __init__(self, root: str | Path, urls: Urls) -> None:
        self.root = Path(root)
        self.urls = urls

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalMediaStore:
        return cls(Path(settings.data_dir) / "media", Urls(settings.base_url))

    def path(self, key: str) -> Path:
        """The file of a key taken from a URL: validated first, NotFound if it is not ours."""
        if not is_valid_key(key):
            raise NotFound("no such media file")
        return self.root / key

    async def put(self, key: str, data: bytes, media_type: str) -> None:
        if not is_valid_key(key):
            raise ValueError(f"not a media key: {key!r}")
        await asyncio.to_thread(self._write, self.root / key, data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists() and path.stat().st_size == len(data):
            return  # content-addressed: the same key holds the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound("no such media file") from None

    def url(self, key: str) -> str:
        return self.urls.media(key)

    async def delete(self, key: str) -> None:
        path = self.path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def store_processed(store: MediaStore, image: ProcessedImage) -> None:
    """Put an image and its thumbnail under their content-hash keys."""
    await store.put(image.key, image.data, image.media_type)
    await store.put(image.thumbnail_key, image.thumbnail, image.thumbnail_media_type)
