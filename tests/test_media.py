"""Media: checking, cleaning and labelling images (media.process_image) and storing them.

Every image, uploaded or generated, is decoded and checked before it is stored;
hostile files are refused with a message the user can act on, and nothing of
them reaches the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from PIL import ExifTags, Image, ImageCms, ImageDraw, PngImagePlugin

from fedisocial.ap.render import TRAINED_ALGORITHMIC_MEDIA
from fedisocial.errors import BadRequest, NotFound
from fedisocial.studio import media as media_module
from fedisocial.studio.media import (
    AiLabel,
    ImagePipeline,
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
        assert source == TRAINED_ALGORITHMIC_MEDIA
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


# -- memory: decompression bombs, big images, concurrent decodes ---------------------------------

MEMORY_PROBE = """
import asyncio, json, os, sys
from fedisocial.errors import FedisocialError
from fedisocial.studio.media import ImagePipeline

data = open(sys.argv[1], "rb").read()
copies = int(sys.argv[2])
pipeline = ImagePipeline(max_bytes=16_000_000, max_pixels=int(sys.argv[3]), concurrency=2)

def memory_kb(field):
    lines = open("/proc/self/status").read().splitlines()
    return int(next(line for line in lines if line.startswith(field)).split()[1])

async def one():
    try:
        image = await pipeline.process(data)
        return [200, f"{image.width}x{image.height}"]
    except FedisocialError as exc:
        return [exc.status, exc.message]

async def main():
    return await asyncio.gather(*(one() for _ in range(copies)))

before = memory_kb("VmHWM:")
results = asyncio.run(main())
print(json.dumps({"results": results, "growth_kb": memory_kb("VmHWM:") - before,
                  "kept_kb": memory_kb("VmRSS:") - before}))
"""


def png_rows(width: int, height: int) -> bytes:
    """A real RGB PNG of width x height black pixels: a few hundred KB that inflate to GBs."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width * 3 + 1)  # filter byte + pixels
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def probe_memory(tmp_path: Path, data: bytes, copies: int = 1,
                 max_pixels: int = 40_000_000) -> dict[str, Any]:  # fmt: skip
    """Process ``copies`` of ``data`` at once in a fresh interpreter; its peak and kept memory.

    The peak is the kernel's VmHWM: ``getrusage``'s ``ru_maxrss`` would start at this
    (large) test process's peak, since Linux keeps it across fork and exec.
    """
    file = tmp_path / "image.bin"
    file.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", MEMORY_PROBE, str(file), str(copies),
         str(max_pixels)], capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_a_decompression_bomb_is_refused_without_decoding_its_pixels(tmp_path: Path) -> None:
    # Given a 300 KB PNG whose 12,000 x 12,000 pixels would take 432 MB as RGB
    width = height = 12_000
    bomb = png_rows(width, height)
    # When it is processed in a fresh process
    probe = probe_memory(tmp_path, bomb)
    # Then it is a 400 that says why, and the process never grew by even a tenth of its pixels
    [[status, message]] = probe["results"]
    assert status == 400 and "12000x12000 pixels (144.0 megapixels)" in message
    assert probe["growth_kb"] * 1024 < width * height * 3 / 10


def test_a_big_png_is_decoded_once_and_stored_downscaled(tmp_path: Path) -> None:
    # Given a PNG of 6,324 x 6,324 pixels: just under the 40 megapixel limit
    side = 6_324
    data = png_rows(side, side)
    # When it is processed
    probe = probe_memory(tmp_path, data)
    # Then it is kept at most 8.3 megapixels (Mastodon's size), and the process grew by
    # about one decoded copy (Pillow keeps RGB in 4 bytes a pixel), not one per step
    # (downscaling, orientation, thumbnail, blurhash)
    [[status, size]] = probe["results"]
    assert status == 200 and size == "2880x2880"
    assert probe["growth_kb"] * 1024 < side * side * 4 * 1.4


def test_a_big_jpeg_is_decoded_at_a_reduced_scale(tmp_path: Path) -> None:
    # Given a JPEG of 6,324 x 6,324 pixels
    side = 6_324
    data = encode(Image.new("RGB", (side, side), (90, 140, 60)), "JPEG", quality=80)
    # When it is processed
    probe = probe_memory(tmp_path, data)
    # Then the decoder scaled it down while reading (draft): less than one full-size copy
    [[status, size]] = probe["results"]
    assert status == 200 and size == "2880x2880"
    assert probe["growth_kb"] * 1024 < side * side * 4 * 0.8


def test_four_big_images_at_once_decode_two_at_a_time_and_give_memory_back(
    tmp_path: Path,
) -> None:
    # Given four uploads of a 6,324 x 6,324 PNG arriving together, two decodes allowed
    side = 6_324
    single = side * side * 4
    # When they are processed
    probe = probe_memory(tmp_path, png_rows(side, side), copies=4)
    # Then all succeed, the peak stays below three decodes (each ~1.25 decoded copies, see
    # above), and the memory is given back after
    assert [status for status, _ in probe["results"]] == [200] * 4
    assert probe["growth_kb"] * 1024 < 2 * single * 1.6
    assert probe["kept_kb"] * 1024 < single / 2


async def test_concurrent_uploads_never_decode_more_than_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a pipeline allowing two decodes, and a decode that counts who is inside and
    # holds on until all five requests have reached the pipeline
    pipeline = ImagePipeline(**LIMITS, concurrency=2)
    real = media_module.process_image
    seen: list[int] = []
    inside, arrivals, lock, pause = 0, 0, threading.Lock(), threading.Event()

    async def arrive(data: bytes) -> Any:
        nonlocal arrivals
        arrivals += 1
        return await pipeline.process(data)

    def counting(data: bytes, **options: Any) -> Any:
        nonlocal inside
        with lock:
            inside += 1
            seen.append(inside)
        try:
            while arrivals < 5:
                pause.wait(0.01)
            return real(data, **options)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(media_module, "process_image", counting)
    # When five uploads arrive at once
    images = await asyncio.gather(*(arrive(encode(picture((64 + n, 64)), "PNG")) for n in range(5)))
    # Then all five are processed, never more than two at a time
    assert [image.width for image in images] == [64, 65, 66, 67, 68]
    assert len(seen) == 5 and max(seen) == 2


# -- colour profiles ------------------------------------------------------------------------------


def swapped_red_blue_profile() -> bytes:
    """An sRGB ICC profile whose red and blue primaries are swapped: a 'foreign' profile
    in which the pixel (255, 0, 0) means blue."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    entries = {bytes(profile[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4 : red + 12], profile[blue + 4 : blue + 12] = (
        profile[blue + 4 : blue + 12], profile[red + 4 : red + 12],
    )  # fmt: skip
    return bytes(profile)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_colour_profiles_are_converted_to_srgb_and_dropped(fmt: str) -> None:
    # Given an image in a foreign colour profile where 'red' pixels mean blue
    data = encode(
        Image.new("RGB", (64, 64), (255, 0, 0)), fmt, icc_profile=swapped_red_blue_profile()
    )
    # When it is processed
    processed = process_image(data, **LIMITS)
    # Then neither the file nor its thumbnail carries a profile, and the pixels are sRGB
    for stored in (processed.data, processed.thumbnail):
        with Image.open(io.BytesIO(stored)) as cleaned:
            assert "icc_profile" not in cleaned.info
            red, _, blue = cleaned.convert("RGB").getpixel((32, 32))  # type: ignore[misc]
            assert blue > 200 > 60 > red


def test_a_broken_colour_profile_is_dropped() -> None:
    data = encode(Image.new("RGB", (32, 32), (10, 200, 10)), "PNG", icc_profile=b"not a profile")
    processed = process_image(data, **LIMITS)
    with Image.open(io.BytesIO(processed.data)) as cleaned:
        assert "icc_profile" not in cleaned.info
        assert cleaned.getpixel((1, 1)) == (10, 200, 10)


def test_generated_images_carry_no_colour_profile() -> None:
    data = encode(
        Image.new("RGB", (32, 32), (255, 0, 0)), "PNG", icc_profile=swapped_red_blue_profile()
    )
    processed = process_image(data, **LIMITS, ai=LABEL)
    with Image.open(io.BytesIO(processed.data)) as cleaned:
        assert "icc_profile" not in cleaned.info
        assert read_xmp(processed.data) is not None
