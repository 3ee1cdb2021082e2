"""WindowData: R-CNN's window sampler (tops: data (B, C, crop, crop) and label (B,)).

The window file (`window_data_param.source`) repeats, per image:
`# <image index>`, `<image path>` (prefixed with root_folder), `<channels> <height> <width>`,
`<number of windows>`, then one `<label> <overlap> <x1> <y1> <x2> <y2>` line per window
(inclusive pixel corners). Windows with overlap >= fg_threshold are foreground (their label must
be positive); those with overlap < bg_threshold are background (label 0); others are unused.
Each batch holds `batch_size - int(batch_size * fg_fraction)` background windows, then the
foreground ones, each drawn uniformly (seeded torch RNG; Caffe uses its own generator, so the
same draws cannot be had) and mirrored with probability 1/2 when transform_param.mirror.

A window is cut from the colour image (BGR), widened by `context_pad` pixels of the crop's scale
(crop_mode "square" also makes it square), clipped to the image with the clipped part left as
zero padding, resized bilinearly (OpenCV's INTER_LINEAR) to its share of the
transform_param.crop_size square, optionally flipped, and written as
`(pixel - mean) * window_data_param.scale` (mean: transform_param.mean_file at the same
position, or mean_value). cache_images keeps the decoded images in memory.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from elasticthought.engine.torch.layer import Layer, register


def c_round(x: float) -> int:
    """C's round(): halves away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def parse_window_file(text: str, root: str = "") -> tuple[list, list[list[float]]]:
    """([(image path, [channels, height, width])], [[image index, label, overlap, x1, y1, x2,
    y2]]) of a window file (all windows; the layer splits them by overlap)."""
    tokens = text.split()
    images: list[tuple[str, list[int]]] = []
    windows: list[list[float]] = []
    pos = 0
    if len(tokens) < 2:
        raise ValueError("Window file is empty")
    while pos < len(tokens):
        if tokens[pos] != "#":
            raise ValueError(f"expected '#' at token {pos}, found {tokens[pos]!r}")
        index = int(tokens[pos + 1])
        path = root + tokens[pos + 2]
        size = [int(t) for t in tokens[pos + 3 : pos + 6]]
        count = int(tokens[pos + 6])
        pos += 7
        images.append((path, size))
        for _ in range(count):
            label, overlap = int(tokens[pos]), float(tokens[pos + 1])
            x1, y1, x2, y2 = (int(t) for t in tokens[pos + 2 : pos + 6])
            windows.append([index, label, overlap, x1, y1, x2, y2])
            pos += 6
    return images, windows


@register
class WindowData(Layer):
    type_name = "WindowData"
    is_data = True
    has_backward = False
    num_bottoms = (0, 0)
    num_tops = (2, 2)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.window_data_param
        t = self.param.transform_param
        self.batch_size = int(p.batch_size)
        self.crop = int(t.crop_size)
        if self.crop <= 0:
            raise self.error("transform_param.crop_size must be positive")
        try:
            with open(p.source, encoding="utf-8") as f:
                images, windows = parse_window_file(f.read(), p.root_folder)
        except OSError as exc:
            raise self.error(f"Failed to open window file {p.source}: {exc.strerror}") from None
        except (ValueError, IndexError) as exc:
            raise self.error(f"bad window file {p.source}: {exc}") from None
        self.images = images
        self.fg = [w for w in windows if w[2] >= p.fg_threshold]
        self.bg = [[*w[:1], 0, 0.0, *w[3:]] for w in windows
                   if not w[2] >= p.fg_threshold and w[2] < p.bg_threshold]  # fmt: skip
        if any(w[1] <= 0 for w in self.fg):
            raise self.error("foreground windows need a positive label")
        if not self.fg or not self.bg:
            raise self.error("needs at least one foreground and one background window")
        self.channels = images[0][1][0] if images else 3
        self.num_fg = int(np.float32(self.batch_size) * np.float32(p.fg_fraction))
        self.scale = np.float32(p.scale)
        self.context_pad = int(p.context_pad)
        self.square = p.crop_mode == "square"
        self.mirror = bool(t.mirror)
        self.mean = None
        if t.HasField("mean_file"):
            from elasticthought.engine.torch.transformer import load_mean_file

            self.mean = load_mean_file(t.mean_file)
        self.mean_values = np.asarray(list(t.mean_value), np.float32)
        if self.mean is not None and len(self.mean_values):
            raise self.error("Cannot specify mean_file and mean_value at the same time")
        self.cache: dict[int, np.ndarray] = {} if p.cache_images else None  # type: ignore

    def _image(self, index: int) -> np.ndarray:
        from elasticthought.engine.datum import decode_image

        if self.cache is not None and index in self.cache:
            return self.cache[index]
        path = self.images[index][0]
        try:
            with open(path, "rb") as f:
                img = decode_image(f.read(), True)
        except OSError as exc:
            raise self.error(f"Could not open or find file {path}: {exc.strerror}") from None
        if self.cache is not None:
            self.cache[index] = img
        return img

    def _draw(self, n: int) -> int:
        return int(torch.randint(0, n, (1,)).item())

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        from elasticthought.engine.imageset import resize_bilinear

        crop = self.crop
        data = np.zeros((self.batch_size, self.channels, crop, crop), np.float32)
        labels = np.zeros(self.batch_size, np.float32)
        item = 0
        for is_fg, count in ((0, self.batch_size - self.num_fg), (1, self.num_fg)):
            pool = self.fg if is_fg else self.bg
            for _ in range(count):
                window = pool[self._draw(len(pool))]
                flip = self.mirror and self._draw(2) == 1
                img = self._image(int(window[0]))
                patch, (h, w), pad_h, pad_w = self._cut(img, window, flip)
                patch = resize_bilinear(patch, h, w)
                if flip:
                    patch = patch[:, :, ::-1]
                pixels = patch.astype(np.float32)
                if self.mean is not None:
                    off = (self.mean.shape[2] - crop) // 2
                    mean = self.mean[
                        :, off + pad_h : off + pad_h + h, off + pad_w : off + pad_w + w
                    ]
                    pixels = (pixels - mean) * self.scale
                elif len(self.mean_values):
                    mv = np.resize(self.mean_values, self.channels).reshape(-1, 1, 1)
                    pixels = (pixels - mv) * self.scale
                else:
                    pixels = pixels * self.scale
                data[item, :, pad_h : pad_h + h, pad_w : pad_w + w] = pixels
                labels[item] = window[1]
                item += 1
        return [torch.from_numpy(data).to(self.device), torch.from_numpy(labels).to(self.device)]

    def _cut(self, img: np.ndarray, window: list[float], flip: bool):
        """(the window's pixels, their (height, width) after resizing, pad_h, pad_w)."""
        crop = self.crop
        x1, y1, x2, y2 = (int(v) for v in window[3:7])
        rows, cols = img.shape[1], img.shape[2]
        pad_h = pad_w = 0
        size = (crop, crop)
        if self.context_pad > 0 or self.square:
            f32 = np.float32
            context_scale = f32(crop) / f32(crop - 2 * self.context_pad)
            half_h = f32(f32(y2 - y1 + 1) / 2.0)
            half_w = f32(f32(x2 - x1 + 1) / 2.0)
            cx, cy = f32(x1) + half_w, f32(y1) + half_h
            if self.square:
                half_h = half_w = max(half_h, half_w)
            x1 = c_round(float(cx - half_w * context_scale))
            x2 = c_round(float(cx + half_w * context_scale))
            y1 = c_round(float(cy - half_h * context_scale))
            y2 = c_round(float(cy + half_h * context_scale))
            unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
            px1, py1 = max(0, -x1), max(0, -y1)
            px2, py2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, x2, y1, y2 = x1 + px1, x2 - px2, y1 + py1, y2 - py2
            if x1 < 0 or y1 < 0 or x2 >= cols or y2 >= rows:
                raise self.error(f"window {window} does not fit the image")
            scale_x = f32(crop) / f32(unclipped_w)
            scale_y = f32(crop) / f32(unclipped_h)
            width = c_round(float(f32(x2 - x1 + 1) * scale_x))
            height = c_round(float(f32(y2 - y1 + 1) * scale_y))
            px1 = c_round(float(f32(px1) * scale_x))
            px2 = c_round(float(f32(px2) * scale_x))
            py1 = c_round(float(f32(py1) * scale_y))
            pad_h = py1
            pad_w = px2 if flip else px1
            height = min(height, crop - pad_h)
            width = min(width, crop - pad_w)
            size = (height, width)
        return img[:, y1 : y2 + 1, x1 : x2 + 1], size, pad_h, pad_w
