"""Media: checking, cleaning and labelling images (media.process_image) and storing them.

Every image, uploaded or generated, is decoded and checked before it is stored;
hostile files are refused with a message the user can act on, and nothing of
them reaches the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import struct
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from PIL import ExifTags, Image, ImageDraw, PngImagePlugin

from fedisocial.errors import BadRequest, NotFound
from fedisocial.studio.media import (
    AI_SOURCE_TYPE,
    AiLabel,
    InvalidImage,
    LocalMediaStore,
    ProcessedImage,
    blurhash,
    media_type_for_key,
    process_image,
    read_xmp,
    store_processed,
)
from fedisocial.urls import Urls

LIMITS = {"max_bytes": 16_000_000, "max_pixels": 40_000_000}
LABEL = AiLabel(prompt='a red fox & a <b>"bold"</b> owl', model="gpt-image-1", provider="openai")
NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
}


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def picture(size: tuple[int, int] = (900, 600), mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: orientation changes are visible in the pixels."""
    image = Image.new(mode, size, (30, 60, 220, 255) if mode == "RGBA" else (30, 60, 220))
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2 - 1, size[1]), fill=(220, 30, 30))
    return image


def noisy(fmt: str, size: tuple[int, int] = (300, 200)) -> bytes:
    """Noise compresses badly: the file is big enough to cut in the middle of the pixels."""
    rng = random.Random(7)
    return encode(Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)), fmt)


def jpeg_with_exif() -> bytes:
    """A 60x40 JPEG whose EXIF says 'rotate 90° clockwise' and where it was taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return encode(picture((60, 40)), "JPEG", exif=exif, quality=95)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR is patched to claim width x height (CRC fixed)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def xmp_fields(packet: str) -> tuple[str | None, str | None, str | None]:
    """(DigitalSourceType, description, CreatorTool) from an XMP packet."""
    root = ElementTree.fromstring(packet)
    description = root.find(".//rdf:Description", NS)
    assert description is not None
    text = description.findtext("dc:description/rdf:Alt/rdf:li", namespaces=NS)
    source = description.get(f"{{{NS['Iptc4xmpExt']}}}DigitalSourceType")
    return source, text, description.get(f"{{{NS['xmp']}}}CreatorTool")


# -- valid images -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type", "extension", "thumb_type"),
    [
        ("JPEG", "image/jpeg", "jpg", "image/jpeg"),
        ("PNG", "image/png", "png", "image/webp"),
        ("WEBP", "image/webp", "webp", "image/webp"),
    ],
)
def test_valid_images_are_measured_and_thumbnailed(
    fmt: str, media_type: str, extension: str, thumb_type: str
) -> None:
    # Given a 900x600 image in an accepted format
    data = encode(picture(), fmt)
    # When it is processed
    image = process_image(data, **LIMITS, filename=f"holiday.{extension.upper()}")
    # Then it keeps its format and size, and has a blurhash and a small thumbnail
    assert (image.media_type, image.extension) == (media_type, extension)
    assert (image.width, image.height) == (900, 600)
    assert len(image.blurhash) == 28  # 4x3 components
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()
    assert image.key == f"{image.sha256[:2]}/{image.sha256}.{extension}"
    assert image.thumbnail_media_type == thumb_type
    with Image.open(io.BytesIO(image.data)) as cleaned:
        assert cleaned.format == fmt
    with Image.open(io.BytesIO(image.thumbnail)) as thumbnail:
        assert thumbnail.size == (400, 267)
        assert Image.MIME[thumbnail.format or ""] == thumb_type


def test_exif_and_gps_are_stripped_and_orientation_applied() -> None:
    # Given a phone photo: stored 60x40 (red left), EXIF orientation 6, GPS position
    data = jpeg_with_exif()
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the test means something
    # When it is processed
    image = process_image(data, **LIMITS)
    # Then it stands upright (40x60, red on top) and carries no EXIF at all
    assert (image.width, image.height) == (40, 60)
    with Image.open(io.BytesIO(image.data)) as cleaned:
        assert len(cleaned.getexif()) == 0
        assert cleaned.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert "exif" not in cleaned.info
        top, bottom = cleaned.convert("RGB").getpixel((20, 5)), cleaned.getpixel((20, 55))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    with Image.open(io.BytesIO(image.thumbnail)) as thumbnail:
        assert thumbnail.size == (40, 60) and len(thumbnail.getexif()) == 0


def test_png_text_chunks_are_dropped_and_transparency_kept() -> None:
    # Given a palette PNG with a transparent colour and an Author text chunk
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 255, 255, 200, 0, 0] + [0] * 762)
    ImageDraw.Draw(image).rectangle((10, 10, 29, 29), fill=1)
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe, 12 Secret Street")
    data = encode(image, "PNG", pnginfo=info, transparency=0)
    # When it is processed
    processed = process_image(data, **LIMITS)
    # Then the text is gone and the transparent corner stays transparent
    with Image.open(io.BytesIO(processed.data)) as cleaned:
        assert "Author" not in cleaned.info
        rgba = cleaned.convert("RGBA")
        assert rgba.getpixel((0, 0)) == (255, 255, 255, 0)
        assert rgba.getpixel((20, 20)) == (200, 0, 0, 255)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (50, 50), (0, 255, 255, 0)), "JPEG")
    processed = process_image(data, **LIMITS)
    with Image.open(io.BytesIO(processed.data)) as cleaned:
        assert cleaned.mode == "RGB"


def test_blurhash_matches_the_reference_implementation() -> None:
    # Expected value computed by the C reference (woltapp/blurhash via blurhash-python 1.2.2)
    # on the 32 px copy this function encodes.
    image = Image.new("RGB", (320, 240), (30, 60, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 30, 200, 180), fill=(250, 200, 40))
    draw.rectangle((220, 100, 310, 230), fill=(20, 160, 60))
    assert blurhash(image) == "LcFYp0];0;5J-DxlN4NN0tEk-N$^"


# -- AI label -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_ai_images_carry_the_iptc_source_type_and_prompt_in_xmp(fmt: str) -> None:
    # Given a generated image
    data = encode(picture((200, 100)), fmt)
    # When it is processed with its AI label
    image = process_image(data, **LIMITS, ai=LABEL)
    # Then the file and its thumbnail say trainedAlgorithmicMedia, the prompt and the model
    for stored in (image.data, image.thumbnail):
        packet = read_xmp(stored)
        assert packet is not None
        source, description, tool = xmp_fields(packet)
        assert source == AI_SOURCE_TYPE
        assert description == LABEL.prompt  # XML-escaped on the way in, intact on the way out
        assert tool is not None and "gpt-image-1" in tool


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_other_images_carry_no_xmp(fmt: str) -> None:
    labelled = process_image(encode(picture((200, 100)), fmt), **LIMITS, ai=LABEL)
    # an uploaded file that already claims a label loses it: we state only what we know
    image = process_image(labelled.data, **LIMITS)
    assert read_xmp(image.data) is None
    assert read_xmp(image.thumbnail) is None


def test_xmp_survives_control_characters_in_the_prompt() -> None:
    label = AiLabel(prompt="a cat\x00\x07 on a mat", model="m", provider="local")
    image = process_image(encode(picture((50, 50)), "PNG"), **LIMITS, ai=label)
    packet = read_xmp(image.data)
    assert packet is not None
    assert xmp_fields(packet)[1] == "a cat on a mat"


# -- hostile files ------------------------------------------------------------

SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)

HOSTILE: dict[str, tuple[bytes, dict[str, Any], str]] = {
    "truncated PNG": (noisy("PNG")[:20_000], {}, "damaged or incomplete"),
    "truncated JPEG": (noisy("JPEG")[:9000], {}, "damaged or incomplete"),
    "truncated WebP": (noisy("WEBP")[:9000], {}, "damaged or incomplete"),
    "decompression bomb": (png_declaring(100_000, 100_000), {}, "megapixels"),
    "over the pixel limit": (png_declaring(8000, 8000), {}, "8000x8000 pixels (64.0 megapixels)"),
    "wrong extension": (encode(picture((20, 20)), "PNG"), {"filename": "cat.jpg"}, ".jpg"),
    "SVG": (SVG, {"filename": "logo.svg"}, "SVG files are not accepted"),
    "SVG named .png": (SVG, {"filename": "logo.png"}, "SVG files are not accepted"),
    "GIF": (encode(picture((20, 20)).convert("P"), "GIF"), {}, "GIF files are not accepted"),
    "random bytes": (random.Random(1).randbytes(4096), {}, "not an image we can read"),
    "empty": (b"", {}, "empty"),
    "over max_bytes": (encode(picture(), "PNG"), {"max_bytes": 1000}, "largest accepted is"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
async def test_hostile_files_are_refused_and_nothing_is_stored(case: str, tmp_path: Path) -> None:
    data, options, message = HOSTILE[case]
    store = LocalMediaStore(tmp_path / "media", Urls("https://social.example"))
    limits: dict[str, Any] = {**LIMITS, **options}
    # When such a file is uploaded (the upload handler's order: process, then store)
    with pytest.raises(InvalidImage) as refused:
        processed = await asyncio.to_thread(process_image, data, **limits)
        await store_processed(store, processed)
    # Then it is a 400 with a clear message, and the store holds nothing
    assert isinstance(refused.value, BadRequest) and refused.value.status == 400
    assert message in refused.value.message
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*"))


def test_messages_say_what_was_found_and_what_is_accepted() -> None:
    with pytest.raises(InvalidImage) as wrong:
        process_image(encode(picture((20, 20)), "PNG"), **LIMITS, filename="cat.jpg")
    assert wrong.value.message == (
        "'cat.jpg' is named .jpg but its content is a PNG image: "
        "rename it to .png or upload the right file."
    )
    with pytest.raises(InvalidImage) as gif:
        process_image(encode(picture((20, 20)).convert("P"), "GIF"), **LIMITS)
    assert "JPEG, PNG or WebP" in gif.value.message


def test_names_without_extension_or_with_the_right_one_pass() -> None:
    jpeg = encode(picture((20, 20)), "JPEG")
    for name in ("upload", "IMG_0001.JPG", "photo.jpeg", "scan.jfif", None):
        assert process_image(jpeg, **LIMITS, filename=name).extension == "jpg"


# -- storage --------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "media", Urls("https://social.example"))


async def test_store_put_get_url(store: LocalMediaStore) -> None:
    image = process_image(encode(picture((120, 80)), "WEBP"), **LIMITS)
    await store_processed(store, image)
    assert await store.get(image.key) == image.data
    assert await store.get(image.thumbnail_key) == image.thumbnail
    assert store.url(image.key) == f"https://social.example/media/{image.key}"
    path = store.path(image.key)
    assert path == store.root / image.sha256[:2] / f"{image.sha256}.webp"
    assert path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    # putting the same content again is a no-op; deleting removes it
    await store_processed(store, image)
    await store.delete(image.key)
    with pytest.raises(NotFound):
        await store.get(image.key)


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "ab/../../secret.png",
        "ab/" + "0" * 64 + ".png",  # prefix does not match the hash
        "00/" + "0" * 64 + ".gif",
        "00/" + "0" * 64 + ".png/../x",
        "/00/" + "0" * 64 + ".png",
        "00/" + "0" * 63 + ".png",
        "00\\" + "0" * 64 + ".png",
    ],
)
async def test_keys_from_urls_are_validated(store: LocalMediaStore, key: str) -> None:
    with pytest.raises(NotFound):
        await store.get(key)
    with pytest.raises(NotFound):
        store.path(key)
    with pytest.raises(ValueError, match="not a media key"):
        await store.put(key, b"x", "image/png")


async def test_missing_file_is_not_found(store: LocalMediaStore) -> None:
    with pytest.raises(NotFound):
        await store.get("00/" + "0" * 64 + ".png")


def test_media_types_by_key() -> None:
    assert media_type_for_key("ab/x.jpg") == "image/jpeg"
    assert media_type_for_key("ab/x.small.webp") == "image/webp"
    assert media_type_for_key("ab/x.png") == "image/png"
    assert media_type_for_key("ab/x.exe") == "application/octet-stream"


def test_processed_image_keys() -> None:
    image = ProcessedImage(b"", "image/png", "png", 1, 1, "", b"", "ab" + "c" * 62)
    assert image.key == "ab/ab" + "c" * 62 + ".png"
    assert image.thumbnail_key == "ab/ab" + "c" * 62 + ".small.webp"
