"""The image history buffer (Shrivastava et al. 2017), as used by CycleGAN: D also sees
older fakes, so it cannot chase only the generator's latest mode.
"""
from __future__ import annotations

import random

import torch

__all__ = ["ImageHistoryBuffer"]


class ImageHistoryBuffer:
    """Keeps up to ``size`` generated images; :meth:`query` returns a batch for D.

    Once full, each image is swapped with a random stored one with probability 1/2 (``size=0``
    disables it).  Its own ``random.Random`` makes its state exactly restorable.
    """
    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError("buffer size must be >= 0")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() > 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        """Contents and RNG state, in types ``torch.load(weights_only=True)`` accepts."""
        version, internal, gauss = self.rng.getstate()
        return {"size": self.size, "images": [im.cpu() for im in self.images],
                "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        self.images = [im.to(device) for im in state["images"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
