"""Run a whole-chunk processor (a model call) over an endless stream, without seams.

``ChunkedProcessor(fn, chunk, warmup, crossfade)`` calls ``fn(mono) -> mono`` (same length,
time-aligned) on windows of ``warmup + chunk`` samples per channel. Each window starts
``warmup`` samples early so a recurrent model has settled before the samples that are kept;
the first window warms up on the time-reversed opening of the stream. Consecutive windows
overlap by ``crossfade`` samples that are joined with a raised-cosine
(sin^2 / cos^2) crossfade, whose gains sum to one, so a steady signal passes unchanged and a
model's small differences between two windows fade over the overlap instead of stepping.

Memory is one window per channel whatever the stream's length. Output lags input by up to
one chunk; ``flush()`` returns the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

MonoFn = Callable[[np.ndarray], np.ndarray]


class ChunkedProcessor:
    def __init__(self, fn: MonoFn, channels: int, chunk: int, warmup: int, crossfade: int) -> None:
        if not 0 < crossfade < chunk:
            raise ValueError("crossfade must be shorter than the chunk")
        self.fn = fn
        self.channels = channels
        self.chunk, self.warmup, self.crossfade = chunk, warmup, crossfade
        t = (np.arange(crossfade) + 0.5) / crossfade
        self._fade_in = np.sin(0.5 * np.pi * t).astype(np.float32) ** 2
        self._fade_out = 1.0 - self._fade_in
        self._buf = np.zeros((channels, 0), np.float32)
        self._buf_start = 0          # absolute index of _buf[:, 0]
        self._pos = 0                # absolute index of the next sample to output
        self._tail: np.ndarray | None = None   # processed [pos, pos + crossfade) of the last window
        self.calls = 0

    def _window(self, end: int) -> np.ndarray:
        """Process input [pos - warmup, end) and return the part from pos on."""
        a = max(self._buf_start, self._pos - self.warmup)
        seg = self._buf[:, a - self._buf_start: end - self._buf_start]
        # At the head of the stream there is nothing before to warm up on: warm up on the
        # time-reversed opening instead (no step at the join: it mirrors about sample 0).
        lead = min(self.warmup - (self._pos - a), seg.shape[1] - 1)
        if lead > 0:
            seg = np.concatenate([seg[:, lead:0:-1], seg], axis=1)
        out = np.stack([np.asarray(self.fn(np.ascontiguousarray(ch)), np.float32) for ch in seg])
        self.calls += 1
        if out.shape != seg.shape:
            raise ValueError(f"processor returned shape {out.shape} for input {seg.shape}")
        out = out[:, self._pos - a + max(lead, 0):]
        if self._tail is not None:
            n = min(self.crossfade, out.shape[1])
            out[:, :n] = self._tail[:, :n] * self._fade_out[:n] + out[:, :n] * self._fade_in[:n]
        return out

    def process(self, block: np.ndarray) -> Iterator[np.ndarray]:
        self._buf = np.concatenate([self._buf, block.astype(np.float32, copy=False)], axis=1)
        while self._buf_start + self._buf.shape[1] >= self._pos + self.chunk:
            out = self._window(self._pos + self.chunk)
            keep = self.chunk - self.crossfade
            self._tail = out[:, keep:]
            self._pos += keep
            drop = max(0, self._pos - self.warmup - self._buf_start)
            self._buf, self._buf_start = self._buf[:, drop:], self._buf_start + drop
            yield out[:, :keep]

    def flush(self) -> Iterator[np.ndarray]:
        end = self._buf_start + self._buf.shape[1]
        if end > self._pos:
            out = self._window(end)
            self._pos = end
            yield out
        self._tail = None
        self._buf = self._buf[:, :0]
