"""The book's widgets: the block-count slider and the photo upload.

The slider works on the static page (pre-rendered PNGs in a ``Stack``, linked in the browser
by :func:`ipywidgets.jslink`); the upload needs a running kernel.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import ipywidgets as w
import torch
from PIL import Image

from .runs import run_info
from .translate import side_by_side, translate_upload
from .viz import generate, grid_image

__all__ = ["png_bytes", "block_slider", "BlockSlider", "PhotoUpload", "photo_upload"]


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image as PNG file bytes (what ``ipywidgets.Image(format="png")`` holds)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _caption(run_dir: Path, blocks: int) -> str:
    info = run_info(run_dir)
    parts = [f"<b>{blocks} residual blocks</b>"]
    if "params_G" in info:
        parts.append(f"generator: {info['params_G']:,} parameters")
    if "train_seconds" in info:
        parts.append(f"trained {info.get('step', '?')} steps in {info['train_seconds'] / 60:.1f} min"
                     f" on {info.get('device', '?')}")
    return " &middot; ".join(parts)


class BlockSlider:
    """The parts of the slider; ``widget`` (caption, slider, stack) is what a chapter displays."""
    def __init__(self, widget: Any, slider: Any, stack: Any, link: Any, images: list[Any],
                 blocks: list[int]) -> None:
        self.widget, self.slider, self.stack, self.link = widget, slider, stack, link
        self.images, self.blocks = images, blocks

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:  # display(BlockSlider) shows the widget
        return self.widget._repr_mimebundle_(**kwargs)


def block_slider(run_dirs: Mapping[int, str | Path], images: torch.Tensor, device: str = "cpu",
                 start: int | None = None) -> BlockSlider:
    """A slider over residual-block counts showing each model's translations of ``images``
    (human to anime), the input row above the output row, at least 640 px wide."""
    blocks = sorted(run_dirs)
    if not blocks:
        raise ValueError("block_slider needs at least one run")
    pages, pngs = [], []
    for b in blocks:
        out = generate(run_dirs[b], images, "AtoB", device)
        grid = grid_image(torch.cat([images, out]), nrow=len(images), size=out.shape[-1])
        scale = max(1, 640 // grid.width)
        if scale > 1:  # crisp upscaling: the page shows the real pixels, just larger
            grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
        data = png_bytes(grid)
        pngs.append(data)
        pages.append(w.VBox([w.HTML(_caption(Path(run_dirs[b]), b)),
                             w.Image(value=data, format="png",
                                     layout=w.Layout(max_width="100%", height="auto"))]))
    stack = w.Stack(pages, selected_index=blocks.index(start) if start in blocks
                    else len(blocks) - 1)
    slider = w.SelectionSlider(options=[(str(b), i) for i, b in enumerate(blocks)],
                               value=stack.selected_index, continuous_update=True,
                               layout=w.Layout(width="420px"))
    # No widget description: ipywidgets typesets descriptions with MathJax 2's API
    # (MathJax.Hub.Queue), which breaks on the book's pages that load MathJax 3.
    link = w.jslink((slider, "index"), (stack, "selected_index"))
    note = w.HTML("<small>The slider above picks the number of residual blocks. "
                  "Top row: the input images; bottom row: the selected generator's "
                  "output. Every model's output was computed when the chapter was executed, "
                  "so the slider also works on the static page.</small>")
    box = w.VBox([slider, stack, note])
    return BlockSlider(box, slider, stack, link, pngs, blocks)


class PhotoUpload:
    """Upload a photo, find the face, translate it with a run's generator, show the result."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", size: int | None = None
                 ) -> None:
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.size = size
        self.upload = w.FileUpload(accept="image/*", multiple=False,
                                   description="your photo")
        self.status = w.HTML("Upload a photo with a face (needs a running kernel: Colab or "
                             "Jupyter; on the static page this button does nothing).")
        # Hidden until a photo is translated: an empty image is a broken image on the static page.
        self.result = w.Image(format="png", layout=w.Layout(display="none"))
        self.upload.observe(self._on_upload, names="value")
        self.widget = w.VBox([self.upload, self.status, self.result])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def translate_bytes(self, data: bytes, name: str = "photo") -> tuple[Image.Image, str]:
        """Translate one uploaded file: returns the side-by-side image and a status line."""
        crop, anime, found = translate_upload(self.checkpoint, data, size=self.size,
                                              device=self.device)
        note = f"{name}: " + ("face found" if found else "no face found, used the centre square")
        return side_by_side(crop, anime), note

    def _on_upload(self, change: dict) -> None:
        files = change.get("new") or ()
        if not files:
            return
        item = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        content = item["content"]
        data = content.tobytes() if hasattr(content, "tobytes") else bytes(content)
        try:
            pair, note = self.translate_bytes(data, item.get("name", "photo"))
        except Exception as exc:  # noqa: BLE001 - show any failure to the reader
            self.status.value = f"could not translate: {exc}"
            return
        self.result.value = png_bytes(pair)
        self.result.layout.display = None
        self.status.value = note


def photo_upload(checkpoint: str | Path, device: str = "cpu", size: int | None = None
                 ) -> PhotoUpload:
    """The "try your own photo" widget for a run directory or checkpoint file."""
    return PhotoUpload(checkpoint, device=device, size=size)
