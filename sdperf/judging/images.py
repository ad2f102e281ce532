"""Comparing images: PSNR, a difference image for review, and whether two runs drew the same image."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def write_difference(old_png: Path, new_png: Path, out_png: Path) -> float | None:
    """An image of |new - old|, amplified so small differences show; returns the PSNR (dB)."""
    import numpy as np
    from PIL import Image

    from sdperf.common.pngmeta import read_image

    old, new = read_image(old_png).astype(np.int16), read_image(new_png).astype(np.int16)
    if old.shape != new.shape:
        return None
    difference = np.abs(new - old)
    Image.fromarray(np.clip(difference * 8, 0, 255).astype(np.uint8)).save(out_png)
    return psnr(old, new)


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio of two 8-bit images in dB (inf when identical)."""
    import numpy as np

    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def keep_for_review(folder: Path, golden_png: Path, new_png: Path) -> tuple[Path, Path, Path, float | None]:
    """Copies the golden and the new image side by side with their difference."""
    folder.mkdir(parents=True, exist_ok=True)
    old, new, diff = folder / "old.png", folder / "new.png", folder / "diff.png"
    shutil.copyfile(golden_png, old)
    if new_png.resolve() != new.resolve():
        shutil.copyfile(new_png, new)
    return old, new, diff, write_difference(old, new, diff)


def compare_images(a_rounds: list[dict], b_rounds: list[dict], a_png: Path | None, b_png: Path | None,
                   review: Path) -> dict[str, Any]:
    """Did B draw the image A drew for the same seed? "identical", "changed" (with the PSNR
    of the last images and their difference image under `review`), or "nondeterministic"
    when A itself drew more than one image, which leaves nothing to compare with."""
    a = sorted({r["image_sha256"] for r in a_rounds})
    b = sorted({r["image_sha256"] for r in b_rounds})
    found: dict[str, Any] = {"a_sha256": a, "b_sha256": b}
    if len(a) > 1:
        return {**found, "outcome": "nondeterministic",
                "detail": f"A drew {len(a)} different images for one seed across its rounds: nothing to compare B with"}
    if a == b:
        return {**found, "outcome": "identical", "detail": f"B draws A's image ({a[0][:12]})"}
    detail = (f"B draws {len(b)} different images for one seed" if len(b) > 1
              else f"B draws {b[0][:12]} where A drew {a[0][:12]}")
    if a_png and b_png and a_png.is_file() and b_png.is_file():
        old, new, diff, db = keep_for_review(review, a_png, b_png)
        found.update(psnr_db=db, review=str(review))
        detail += f"; PSNR {db:.1f} dB; A {old}, B {new}, difference {diff}"
    return {**found, "outcome": "changed", "detail": detail}
