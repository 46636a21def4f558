"""Stage 2: the encoder-decoder with attention alternating between time and space.

The same embeddings, positional options and denoising as the stage-1 model; each block attends
either over time (each sensor over its steps) or over sensors (each step over all sensors), with
one attention layer serving both axes. `pattern` picks the order:

- alternating: T S T S ... (the roadmap's alternating spatio-temporal architecture)
- stacked:     T ... T S ... S (as STAEformer: temporal layers, then spatial layers)
- temporal:    T ... T (the stage-1 model; the control)

Spatial attention runs through scaled_dot_product_attention over (B*T, N) sequences, so on a GPU
the memory-efficient / flash kernels never materialise an N x N matrix per head.
"""

from __future__ import annotations

from .encdec import EncoderDecoder

TIME, SPACE = 1, 2


def block_axes(pattern: str, depth: int) -> list[int]:
    """The attended axis of each of `depth` blocks for a pattern."""
    if pattern == "alternating":
        return [TIME if i % 2 == 0 else SPACE for i in range(depth)]
    if pattern == "stacked":
        n_time = (depth + 1) // 2
        return [TIME] * n_time + [SPACE] * (depth - n_time)
    if pattern == "temporal":
        return [TIME] * depth
    raise ValueError(f"model.pattern must be alternating, stacked or temporal, got {pattern!r}")


class AlternatingEncoderDecoder(EncoderDecoder):
    """Encoder-decoder whose blocks attend over time or over sensors as `pattern` says."""

    def __init__(self, *args, pattern: str = "alternating", encoder_depth: int = 4, decoder_depth: int = 2,
                 adaptive_dim: int = 0, **encdec):
        """EncoderDecoder's arguments (encdec: all but the block axes, which `pattern` sets) plus pattern."""
        super().__init__(*args, encoder_depth=encoder_depth, decoder_depth=decoder_depth, adaptive_dim=adaptive_dim,
                         encoder_axes=block_axes(pattern, encoder_depth),
                         decoder_axes=block_axes(pattern, decoder_depth), **encdec)
        self.pattern = pattern
