"""12 MP photo intake: where the CPU goes, and whether a cheaper resize keeps the picture.

    python -m bench.intake [--repeat 20] [--cache-entries 64]

Four synthetic camera photos, made here (no downloads): gradients, multi-scale texture, hard
edges, fine stripes near the output's Nyquist limit and sensor noise, saved as quality-92 JPEGs:

- landscape: 4000x3000, no orientation tag;
- portrait: stored 3000x4000, no orientation tag;
- exif6 / exif8: stored 4000x3000, EXIF orientation 6 / 8 (a phone held upright), shown 3000x4000.

Each variant turns the bytes into what the intake hands on (decode with JPEG draft, orient, RGB,
sRGB, resize to the 1024 px long side, quality-90 JPEG, sha256), in the same order as
`tryon.images._decode`; they differ only in the resampling filter and in whether the EXIF
rotation runs on the decoded draft (before the resize) or on the small result (after it):

    lanczos, rotate first    the intake before issue 18 item 6
    lanczos, rotate after
    bicubic, rotate first
    bicubic, rotate after    the candidate
    shipped                  tryon.images.load_image as it is in the tree now

Runs are interleaved (every variant on every photo, then again) so a busy neighbour slows all
of them alike. Quality: SSIM (gaussian window, sigma 1.5, luma) of each variant's decoded output
against "lanczos, rotate first"'s output, and against a reference made without shortcuts (full
12 MP decode, rotate, LANCZOS, no JPEG step); then the same on the pixels just before the JPEG
step, since two quality-90 encodes of nearly equal pictures differ by more than the filters do.
Every output's size must equal the reference's, and it must carry no EXIF orientation.

Then the memory of one cached NormalizedImage (the service keeps them in `_known_refs`, up to
1024, and `_intakes`, up to 64): the bytes tracemalloc sees per entry of a TTLCache filled with
`--cache-entries` distinct ones, keyed by fal-like URLs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import time
import tracemalloc
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from bench.common import machine, report, summary
from tryon.cache import TTLCache
from tryon.images import (
    JPEG_QUALITY, Limits, NormalizedImage, _orientation, _to_rgb, _to_srgb, load_image, target_size,
)

LIMITS = Limits(max_bytes=64 * 2**20, max_pixels=50_000_000, max_side=1024)
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}
STAGES = ("decode", "rotate", "colour", "resize", "encode")


# --- the photos ------------------------------------------------------------------------------


def camera_photo(seed: int, size: tuple[int, int], orientation: int | None = None) -> bytes:
    """A photo-like JPEG that does not compress to nothing and has detail at every scale."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    pixels = 70 + 90 * x * np.array([1.0, 0.6, 0.3], np.float32) + 60 * y * np.array([0.2, 0.5, 1.0], np.float32)
    for cells, amplitude in ((40, 30), (300, 14), (1200, 8)):  # texture: blotches, fabric, grain
        small = rng.normal(128, 40, (max(2, cells * h // w), cells, 3)).clip(0, 255).astype(np.uint8)
        pixels += (np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), np.float32) - 128) * (
            amplitude / 40)
    shapes = Image.new("L", size, 0)  # hard edges: objects, text-like strokes
    draw = ImageDraw.Draw(shapes)
    for _ in range(250):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 6)), y0 + int(rng.integers(10, h // 6))
        shade = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=shade)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=shade)
    for _ in range(400):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.line((x0, y0, x0 + int(rng.integers(-300, 300)), y0 + int(rng.integers(-300, 300))),
                  fill=int(rng.integers(0, 256)), width=int(rng.integers(2, 9)))
    mask = np.asarray(shapes, np.float32)[:, :, None]
    pixels = pixels * 0.6 + mask * 0.4
    # A striped shirt: period 9 px at 12 MP is ~2.3 px at 1024 px, where filters alias differently.
    sx, sy, sw, sh = w // 3, h // 3, w // 4, h // 3
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    stripes = 60 * np.sin(2 * np.pi * (xx * 0.8 + yy * 0.6) / 9.0)
    pixels[sy:sy + sh, sx:sx + sw] += stripes[:, :, None]
    pixels += rng.normal(0, 5, pixels.shape).astype(np.float32)  # sensor noise
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    options = {}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    image.save(buffer, "JPEG", quality=92, **options)
    return buffer.getvalue()


def photos() -> dict[str, bytes]:
    return {
        "landscape 4000x3000": camera_photo(1, (4000, 3000)),
        "portrait 3000x4000": camera_photo(2, (3000, 4000)),
        "exif6 4000x3000 (shown 3000x4000)": camera_photo(3, (4000, 3000), 6),
        "exif8 4000x3000 (shown 3000x4000)": camera_photo(4, (4000, 3000), 8),
    }


# --- the variants ----------------------------------------------------------------------------


def pipeline(data: bytes, resample: Image.Resampling, rotate_after: bool, stages: dict[str, list[float]],
             keep: dict[str, np.ndarray] | None = None) -> bytes:
    """tryon.images' intake of one JPEG with the filter and the rotation's place as parameters;
    `keep` gets the pixels just before the JPEG step, to tell the filter's change from the JPEG's."""
    t0 = time.perf_counter()
    image = Image.open(io.BytesIO(data))
    final_size = target_size(*image.size, LIMITS.max_side)
    if image.format in ("JPEG", "MPO") and final_size != image.size:
        image.draft(image.mode, final_size)
    image.load()
    icc_profile = image.info.get("icc_profile")
    orientation = _orientation(image)
    t1 = time.perf_counter()
    if not rotate_after:
        image = ImageOps.exif_transpose(image)  # what tryon.images did before issue 18 item 6
    t2 = time.perf_counter()
    image = _to_srgb(_to_rgb(image), icc_profile)
    t3 = time.perf_counter()
    size = target_size(*image.size, LIMITS.max_side)
    if size != image.size:
        image = image.resize(size, resample, reducing_gap=3.0)
    t4 = time.perf_counter()
    if rotate_after and orientation in TRANSPOSE:
        image = image.transpose(TRANSPOSE[orientation])
    t5 = time.perf_counter()
    if keep is not None:
        keep["pixels"] = np.asarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, comment=b"")
    jpeg = buffer.getvalue()
    hashlib.sha256(jpeg).hexdigest()
    t6 = time.perf_counter()
    for stage, ms in zip(STAGES, (t1 - t0, (t2 - t1) + (t5 - t4), t3 - t2, t4 - t3, t6 - t5)):
        stages[stage].append(ms * 1000)
    return jpeg


def shipped(data: bytes, stages: dict[str, list[float]], keep: dict[str, np.ndarray] | None = None) -> bytes:
    return load_image(data, LIMITS).jpeg


def variants() -> dict[str, Callable[[bytes, dict[str, list[float]]], bytes]]:
    lanczos, bicubic = Image.Resampling.LANCZOS, Image.Resampling.BICUBIC
    return {
        "lanczos, rotate first (before)": lambda d, s, k=None: pipeline(d, lanczos, False, s, k),
        "lanczos, rotate after": lambda d, s, k=None: pipeline(d, lanczos, True, s, k),
        "bicubic, rotate first": lambda d, s, k=None: pipeline(d, bicubic, False, s, k),
        "bicubic, rotate after (candidate)": lambda d, s, k=None: pipeline(d, bicubic, True, s, k),
        "shipped: tryon.images.load_image": shipped,
    }


def reference(data: bytes) -> np.ndarray:
    """No shortcuts: full-size decode, rotate, LANCZOS in one step, no JPEG round trip."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    size = target_size(*image.size, LIMITS.max_side)
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


# --- quality ---------------------------------------------------------------------------------


def luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _blur(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' convolution: a sum of shifted slices, fast in plain numpy."""
    k = len(kernel)
    rows = sum(kernel[i] * a[i:a.shape[0] - k + 1 + i, :] for i in range(k))
    return sum(kernel[i] * rows[:, i:rows.shape[1] - k + 1 + i] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two RGB pictures' luma: 11-tap gaussian, sigma 1.5, L=255."""
    x, y = luma(a), luma(b)
    taps = np.arange(11) - 5
    kernel = np.exp(-(taps ** 2) / (2 * 1.5 ** 2))
    kernel /= kernel.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _blur(x, kernel), _blur(y, kernel)
    sxx = _blur(x * x, kernel) - mx * mx
    syy = _blur(y * y, kernel) - my * my
    sxy = _blur(x * y, kernel) - mx * my
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(index.mean())


def decoded(jpeg: bytes) -> tuple[np.ndarray, int]:
    image = Image.open(io.BytesIO(jpeg))
    return np.asarray(image.convert("RGB")), int(image.getexif().get(0x0112, 1))


# --- memory ----------------------------------------------------------------------------------


def cache_bytes_per_entry(images: list[NormalizedImage], entries: int) -> float:
    """What tracemalloc sees a TTLCache[NormalizedImage] hold per entry, the way `_known_refs` does."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache: TTLCache[NormalizedImage] = TTLCache(capacity=entries)
    for i in range(entries):
        source = images[i % len(images)]
        copy = NormalizedImage(jpeg=bytes(bytearray(source.jpeg)), width=source.width, height=source.height,
                               source_width=source.source_width, source_height=source.source_height,
                               digest=hashlib.sha256(source.jpeg + i.to_bytes(4, "big")).hexdigest())
        cache.put(f"https://v3.fal.media/files/lion/{i:06d}Xq9b_Zk2pTn7_person.jpeg", copy, ttl_s=3000.0)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == entries
    return held / entries


def worst_case_jpeg(side: int) -> int:
    """The largest intake output: a side x side picture of pure noise (no photo compresses worse)."""
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return len(load_image(Image.fromarray(noise, "RGB"), Limits(2**30, 50_000_000, side)).jpeg)


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per variant and photo")
    parser.add_argument("--cache-entries", type=int, default=64)
    args = parser.parse_args()

    started = time.perf_counter()
    sources = photos()
    refs = {name: reference(data) for name, data in sources.items()}
    print(f"made {len(sources)} photos ({', '.join(f'{len(d) / 2**20:.1f}' for d in sources.values())} MB) "
          f"and their references in {time.perf_counter() - started:.1f} s")
    runs = variants()
    times = {(v, p): [] for v in runs for p in sources}
    cpu = {(v, p): [] for v in runs for p in sources}  # this thread's CPU time: what a busy neighbour does not add
    stages = {v: {s: [] for s in STAGES} for v in runs}
    outputs: dict[tuple[str, str], bytes] = {}
    pixels: dict[tuple[str, str], np.ndarray] = {}
    for v, run in runs.items():  # warm-up, and the outputs compared below
        for p, data in sources.items():
            keep: dict[str, np.ndarray] = {}
            outputs[v, p] = run(data, {s: [] for s in STAGES}, keep)
            if "pixels" in keep:
                pixels[v, p] = keep["pixels"]
    for _ in range(args.repeat):
        for p, data in sources.items():
            for v, run in runs.items():
                t, c = time.perf_counter(), time.thread_time()
                run(data, stages[v])
                cpu[v, p].append((time.thread_time() - c) * 1000)
                times[v, p].append((time.perf_counter() - t) * 1000)

    rows = {}
    for v in runs:
        rows[f"{v}: all photos"] = summary([ms for p in sources for ms in times[v, p]])
    for v in runs:
        rows[f"{v}: all photos, CPU time"] = summary([ms for p in sources for ms in cpu[v, p]])
    for v in runs:
        for p in sources:
            rows[f"{v}: {p}"] = summary(times[v, p])
    report("12 MP JPEG intake, per photo", rows)

    print("\nstage p50 ms, all photos (rotate = exif_transpose before, or transpose after, the resize)")
    print(f"{'variant':36}" + "".join(f"{s:>9}" for s in STAGES))
    for v in list(runs)[:4]:
        print(f"{v:36}" + "".join(f"{summary(stages[v][s])['p50']:>9.2f}" for s in STAGES))

    baseline = "lanczos, rotate first (before)"
    quality, problems = {}, []
    for v in runs:
        vs_base, vs_ref, raw_base, raw_ref = [], [], [], []
        for p in sources:
            out, orientation = decoded(outputs[v, p])
            base, _ = decoded(outputs[baseline, p])
            if out.shape != refs[p].shape or orientation != 1:
                problems.append(f"{v} / {p}: {out.shape[1]}x{out.shape[0]}, orientation {orientation}; "
                                f"expected {refs[p].shape[1]}x{refs[p].shape[0]}, 1")
                continue
            vs_base.append(ssim(out, base))
            vs_ref.append(ssim(out, refs[p]))
            if (v, p) in pixels:
                raw_base.append(ssim(pixels[v, p], pixels[baseline, p]))
                raw_ref.append(ssim(pixels[v, p], refs[p]))

        def low(values: list[float]) -> float | None:
            return round(min(values), 4) if values else None

        quality[v] = {"ssim_vs_lanczos_min": low(vs_base), "ssim_vs_reference_min": low(vs_ref),
                      "ssim_vs_lanczos_mean": round(float(np.mean(vs_base)), 4) if vs_base else None,
                      "pre_jpeg_ssim_vs_lanczos_min": low(raw_base), "pre_jpeg_ssim_vs_reference_min": low(raw_ref)}

    def cell(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "-"

    print("\nSSIM, luma, min over the 4 photos: output JPEG vs lanczos-first's output JPEG, vs the reference;"
          "\nthen the same before the JPEG step (pixels as resized)")
    print(f"{'variant':36} {'p50 ms':>7} {'p95 ms':>7} {'CPU p50':>8} {'CPU p95':>8} {'vs lanczos':>11} {'vs ref':>8} "
          f"{'pre-JPEG vs lanczos':>20} {'vs ref':>8}")
    for v in runs:
        s, c, q = rows[f"{v}: all photos"], rows[f"{v}: all photos, CPU time"], quality[v]
        print(f"{v:36} {s['p50']:>7.1f} {s['p95']:>7.1f} {c['p50']:>8.1f} {c['p95']:>8.1f} {cell(q['ssim_vs_lanczos_min']):>11} "
              f"{cell(q['ssim_vs_reference_min']):>8} {cell(q['pre_jpeg_ssim_vs_lanczos_min']):>20} "
              f"{cell(q['pre_jpeg_ssim_vs_reference_min']):>8}")
    print("sizes and orientation: " + ("identical to the reference for every variant and photo" if not problems
                                       else "MISMATCH\n  " + "\n  ".join(problems)))
    print(json.dumps({"benchmark": "12 MP JPEG intake quality", "machine": machine(), "results": quality,
                      "problems": problems}))

    normalized = [load_image(data, LIMITS) for data in sources.values()]
    per_entry = cache_bytes_per_entry(normalized, args.cache_entries)
    jpeg_sizes = [len(n.jpeg) for n in normalized]
    worst = {side: worst_case_jpeg(side) for side in (1024, 2048)}
    print(f"\nNormalizedImage from a 12 MP photo: jpeg {min(jpeg_sizes) / 1024:.0f}-{max(jpeg_sizes) / 1024:.0f} KB, "
          f"no PIL image held; a cache entry (jpeg + digest + object + key + TTLCache slot) "
          f"{per_entry / 1024:.0f} KB on average over {args.cache_entries} entries")
    for capacity in (64, 128, 256, 1024):
        print(f"  capacity {capacity:>5}: {capacity * per_entry / 2**20:>7.1f} MiB at these photos, "
              f"{capacity * worst[1024] / 2**20:>7.1f} MiB worst case at max_side 1024 "
              f"({worst[1024] / 1024:.0f} KB noise JPEG), {capacity * worst[2048] / 2**20:>7.1f} MiB at max_side 2048")
    print(json.dumps({"benchmark": "intake cache memory", "machine": machine(), "jpeg_bytes": jpeg_sizes,
                      "bytes_per_entry": round(per_entry), "worst_case_jpeg_bytes": worst}))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
