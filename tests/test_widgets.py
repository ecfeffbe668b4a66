"""cyclegan_lib.widgets: the static-HTML block slider and the photo upload."""
from __future__ import annotations

import io
from pathlib import Path

import ipywidgets as w
import pytest
import torch
from ipywidgets.widgets.widget_link import DirectionalLink, Link
from PIL import Image

from cyclegan_lib import viz, widgets


@pytest.fixture(scope="module")
def slider(smoke_run: Path, data_root: Path) -> widgets.BlockSlider:
    x = viz.test_images(data_root, "A", n=3, size=32)
    return widgets.block_slider({9: smoke_run, 3: smoke_run, 6: smoke_run}, x)


def test_slider_is_linked_in_the_browser(slider: widgets.BlockSlider) -> None:
    link = slider.link
    assert isinstance(link, Link) and not isinstance(link, DirectionalLink)
    assert link._model_name == "LinkModel"  # two-way, kept by the browser
    assert link.source == (slider.slider, "index")
    assert link.target == (slider.stack, "selected_index")
    assert isinstance(slider.stack, w.Stack)
    assert slider.blocks == [3, 6, 9]
    assert [label for label, _ in slider.slider.options] == ["3", "6", "9"]
    assert slider.slider.index == slider.stack.selected_index == 2  # starts at 9 blocks
    assert slider.widget.children[0] is slider.slider and slider.widget.children[1] is slider.stack


def test_slider_pages_hold_valid_pngs(slider: widgets.BlockSlider) -> None:
    assert len(slider.stack.children) == 3 == len(slider.images)
    for page, png in zip(slider.stack.children, slider.images):
        caption, image = page.children
        assert isinstance(image, w.Image) and image.format == "png" and image.value == png
        im = Image.open(io.BytesIO(png))
        assert im.format == "PNG" and im.width >= 320  # upscaled for the page
        assert "residual blocks" in caption.value and "parameters" in caption.value


def test_slider_state_embeds_the_link(slider: widgets.BlockSlider) -> None:
    """What a static page needs: every model, the link included, in the saved state."""
    from ipywidgets.embed import embed_data

    data = embed_data(views=[slider.widget])
    names = [m["model_name"] for m in data["manager_state"]["state"].values()]
    assert "LinkModel" in names and "StackModel" in names and "ImageModel" in names
    assert names.count("ImageModel") == 3


def test_slider_start_and_errors(smoke_run: Path) -> None:
    x = torch.zeros(1, 3, 32, 32)
    s = widgets.block_slider({3: smoke_run, 9: smoke_run}, x, start=3)
    assert s.stack.selected_index == 0 == s.slider.index
    with pytest.raises(ValueError):
        widgets.block_slider({}, x)


def test_png_bytes_roundtrip() -> None:
    data = widgets.png_bytes(Image.new("RGB", (5, 4), (1, 2, 3)))
    im = Image.open(io.BytesIO(data))
    assert im.size == (5, 4) and im.getpixel((0, 0)) == (1, 2, 3)


def _jpeg(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()


def test_photo_upload_translates(smoke_run: Path, faces_root: Path) -> None:
    up = widgets.photo_upload(smoke_run)
    assert up.result.layout.display == "none"  # no broken empty image on the static page
    photo = sorted((faces_root / "expressive").iterdir())[0]
    pair, note = up.translate_bytes(_jpeg(photo), "me.jpg")
    assert pair.size == (512, 256) and note.startswith("me.jpg: ")
    # The upload button path: ipywidgets 8 passes a tuple of dicts with memoryview content.
    up._on_upload({"new": ({"name": "me.jpg", "content": memoryview(_jpeg(photo))},)})
    assert Image.open(io.BytesIO(up.result.value)).size == (512, 256)
    assert up.result.layout.display is None
    assert up.status.value.startswith("me.jpg: ")


def test_photo_upload_reports_bad_files(smoke_run: Path) -> None:
    up = widgets.photo_upload(smoke_run)
    up._on_upload({"new": ({"name": "x.txt", "content": memoryview(b"not an image")},)})
    assert up.status.value.startswith("could not translate")
    assert up.result.value == b""
