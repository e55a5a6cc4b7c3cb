"""A labelled grid of images (the quality comparison: one prompt and seed across tiers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LABEL_HEIGHT = 28


def _label(text: str, width: int) -> torch.Tensor:
    """A dark strip [LABEL_HEIGHT, width, 3] with ``text`` drawn in PIL's built-in font."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, LABEL_HEIGHT), (24, 24, 28))
    ImageDraw.Draw(strip).text((6, 8), text, fill=(235, 235, 235))
    data = torch.frombuffer(bytearray(strip.tobytes()), dtype=torch.uint8)
    return data.view(LABEL_HEIGHT, width, 3).float() / 255


def labelled_grid(images: list[torch.Tensor], labels: list[str], columns: int = 2) -> torch.Tensor:
    """First image of each batch, resized to the first one's size, each above its label: [1, H, W, 3]."""
    if not images:
        raise ValueError("no images")
    height, width = images[0].shape[1], images[0].shape[2]
    cells = []
    for image, label in zip(images, labels, strict=True):
        first = image[:1, ..., :3].float()
        if first.shape[1:3] != (height, width):
            first = F.interpolate(first.movedim(-1, 1), size=(height, width), mode="bilinear",
                                  align_corners=False).movedim(1, -1)
        cells.append(torch.cat([first[0], _label(label, width)], dim=0))
    columns = max(1, min(columns, len(cells)))
    while len(cells) % columns:
        cells.append(torch.zeros_like(cells[0]))
    rows = [torch.cat(cells[i:i + columns], dim=1) for i in range(0, len(cells), columns)]
    return torch.cat(rows, dim=0).unsqueeze(0)
