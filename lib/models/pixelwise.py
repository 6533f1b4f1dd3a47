"""Pixelwise MLPs with per-tile parameters: ASAPNet's high-res stream, in a reference and a fast form.

Every pixel is run through the small MLP of the tile that contains it (the parameters of a
``k x k`` tile come from one cell of the low-res grid), with the labels and a cosine
positional encoding as input (Shaham et al., CVPR 2021, sec. 3.1-3.2).
:func:`pixelwise_mlp_reference` is the per-tile batched matmul as written;
:func:`pixelwise_mlp_fast` computes the same function from label ids (a gather of the first
layer's weight rows, the positional-encoding term once per tile, cache-sized chunks);
``benchmarks/NOTES.md`` records what each step saves.

Parameter layout (official ``ASAPNetsHRStream``): for each layer, ``C_out`` biases then
``C_in * C_out`` weights, the weights read row-major as a ``(C_in, C_out)`` matrix, so a layer
computes ``y = x @ W + b`` with ``x`` a row of ``C_in`` features.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "OUT_CHANNELS",
    "MLP_NEGATIVE_SLOPE",
    "CHUNK_PIXELS",
    "is_power_of_two",
    "positional_encoding",
    "pe_channels",
    "mlp_channels",
    "mlp_param_count",
    "split_mlp_params",
    "pixelwise_mlp",
    "pixelwise_mlp_reference",
    "pixelwise_mlp_fast",
    "positional_encoding_factors",
    "onehot_to_ids",
    "conv3x3_onehot",
    "reflect_index",
]

OUT_CHANNELS = 3  # RGB output (official: output_nc)
MLP_NEGATIVE_SLOPE = 0.01  # official: leaky_relu(out, 0.01) between MLP layers
CHUNK_PIXELS = 8192  # fast MLP: pixels per chunk, so a chunk's activations stay in the CPU cache (benchmarks/NOTES.md)


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return n >= 1 and (n & (n - 1)) == 0


def reflect_index(n: int, pad: int, device: torch.device | str | None = None) -> Tensor:
    """Indices of a reflect padding (edge not repeated) of a length-n axis by ``pad``: (n + 2 pad,)."""
    i = torch.arange(-pad, n + pad, device=device).abs()  # (n + 2 pad,)
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def conv3x3_onehot(ids: Tensor, num_classes: int, weight: Tensor, extra: Tensor | None = None) -> Tensor:
    """A 3x3 convolution (zero padding 1, stride 1, no bias) of ``cat(one_hot(ids), extra)``
    without the one-hot map: per pixel, the sum of the 9 weight columns picked by the
    neighbours' ids (one ``F.embedding_bag``; outside the image a zero row), plus the extra
    channels' 3x3 neighbourhoods times their weights (a (B H W, 9) x (9, O) matmul each).

    Args:
        ids: integer label ids, (B, H, W), in [0, num_classes).
        num_classes: C.
        weight: conv weight, (O, C + E, 3, 3).
        extra: E further input channels, (B, E, H, W), or None (E = 0).

    Returns:
        (B, O, H, W), contiguous.
    """
    b, h, w = ids.shape
    o, c_total = weight.shape[:2]
    n_extra = 0 if extra is None else extra.shape[1]
    if weight.shape[2:] != (3, 3) or c_total != num_classes + n_extra:
        raise ValueError(f"weight shape {tuple(weight.shape)} does not fit {num_classes} classes + {n_extra} channels, 3x3")
    dev, dtype = weight.device, weight.dtype
    taps = weight.permute(2, 3, 1, 0).reshape(9, c_total, o)  # (9, C+E, O): tap = 3 dy + dx
    zero_row = 9 * num_classes
    table = torch.cat([taps[:, :num_classes].reshape(zero_row, o), taps.new_zeros(1, o)])  # (9 C + 1, O)
    ids_p = F.pad(ids, (1, 1, 1, 1), value=-1)  # (B, H+2, W+2): -1 outside the image
    win = ids_p.unfold(1, 3, 1).unfold(2, 3, 1).reshape(b * h * w, 9)  # (B*H*W, 9): neighbours' ids, tap-major
    offsets = torch.arange(9, device=dev) * num_classes  # (9,): first table row of each tap
    index = torch.where(win < 0, zero_row, win + offsets)  # (B*H*W, 9)
    out = F.embedding_bag(index, table, mode="sum")  # (B*H*W, O)
    for e in range(n_extra):
        vals = F.pad(extra[:, e].to(dtype), (1, 1, 1, 1)).unfold(1, 3, 1).unfold(2, 3, 1)  # (B, H, W, 3, 3)
        out = torch.addmm(out, vals.reshape(b * h * w, 9), taps[:, num_classes + e])  # + (B*H*W, 9) x (9, O)
    out = out.view(b, h * w, o)  # (B, H*W, O)
    res = torch.empty(b, o, h * w, device=dev, dtype=dtype)  # (B, O, H*W)
    for i in range(b):  # 2-D transposing copies (much faster than a 4-D permuted copy)
        res[i].copy_(out[i].t())
    return res.view(b, o, h, w)  # (B, O, H, W)


def pe_channels(k: int) -> int:
    """Channels of the cosine positional encoding for tile size k: 4 log2(k)."""
    return 4 * int(math.log2(k))


def positional_encoding(
    k: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Cosine positional encoding of the pixel position inside a k x k tile (sec. 3.1).

    For the periods f = k, k/2, ..., 2 (in that order) four channels:
    ``cos(2 pi (x mod f) / f)``, ``sin(2 pi (x mod f) / f)``, ``cos(2 pi (y mod f) / f)``,
    ``sin(2 pi (y mod f) / f)``, with x the column and y the row. As f divides k, the encoding
    of a pixel depends only on its position inside its tile.

    Args:
        k: the tile size, a power of two.
        device: device of the result.
        dtype: dtype of the result (computed in float32, then cast).

    Returns:
        The encoding, (4 log2 k, k, k).
    """
    if not is_power_of_two(k):
        raise ValueError(f"tile size k={k} must be a power of two")
    pos = torch.arange(k, device=device, dtype=torch.float32)  # (k,)
    chans = []
    f = k
    while f > 1:
        phase = 2 * math.pi * torch.remainder(pos, f) / f  # (k,)
        cx = torch.cos(phase).view(1, k).expand(k, k)  # (k, k): varies along columns
        sx = torch.sin(phase).view(1, k).expand(k, k)  # (k, k)
        cy = torch.cos(phase).view(k, 1).expand(k, k)  # (k, k): varies along rows
        sy = torch.sin(phase).view(k, 1).expand(k, k)  # (k, k)
        chans += [cx, sx, cy, sy]
        f //= 2
    if not chans:
        return torch.zeros(0, k, k, device=device, dtype=dtype or torch.float32)
    return torch.stack(chans).to(dtype or torch.float32)  # (4 log2 k, k, k)


def mlp_channels(in_channels: int, width: int, depth: int, out_channels: int) -> list[int]:
    """Layer widths of a ``depth``-layer MLP: [in, width, ..., width, out] (depth + 1 entries)."""
    if depth < 1:
        raise ValueError(f"MLP depth={depth} must be >= 1")
    return [in_channels] + [width] * (depth - 1) + [out_channels]


def mlp_param_count(in_channels: int, width: int, depth: int, out_channels: int) -> int:
    """Parameters of the MLP: sum over layers of C_out (biases) + C_in * C_out (weights).

    Cityscapes (51 inputs, width 64, depth 5, 3 outputs): 16,003.
    """
    ch = mlp_channels(in_channels, width, depth, out_channels)
    return sum(co + ci * co for ci, co in zip(ch[:-1], ch[1:]))


def split_mlp_params(params: Tensor, channels: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """Splits per-tile MLP parameters into per-layer weights and biases.

    Layout per layer (official): C_out biases, then C_in * C_out weights read row-major as a
    (C_in, C_out) matrix.

    Args:
        params: (B, P, h, w), one parameter vector per low-res cell.
        channels: layer widths, input first (see :func:`mlp_channels`).

    Returns:
        One ``(weight, bias)`` per layer, weight (B*h*w, C_in, C_out) and bias (B*h*w, 1, C_out),
        cells ordered batch-major then row-major.
    """
    b, p, h, w = params.shape
    expected = sum(co + ci * co for ci, co in zip(channels[:-1], channels[1:]))
    if p != expected:
        raise ValueError(f"params have {p} channels; MLP {list(channels)} needs {expected}")
    flat = params.permute(0, 2, 3, 1).reshape(b * h * w, p)  # (N, P), N = B*h*w
    layers = []
    idx = 0
    for ci, co in zip(channels[:-1], channels[1:]):
        bias = flat[:, idx : idx + co].reshape(-1, 1, co)  # (N, 1, C_out)
        idx += co
        weight = flat[:, idx : idx + ci * co].reshape(-1, ci, co)  # (N, C_in, C_out)
        idx += ci * co
        layers.append((weight, bias))
    return layers


def pixelwise_mlp_reference(
    x: Tensor,
    params: Tensor,
    k: int,
    width: int = 64,
    depth: int = 5,
    out_channels: int = OUT_CHANNELS,
    final_activation: Literal["tanh", "none"] = "tanh",
    negative_slope: float = MLP_NEGATIVE_SLOPE,
) -> Tensor:
    """Applies to every pixel the MLP of its k x k tile (sec. 3.1): the reference implementation.

    Tiles are the batch of small matmuls (``torch.baddbmm``) over the whole image at once:
    per-pixel weights are never materialised. This straightforward form is what
    :func:`pixelwise_mlp_fast` is tested against; :func:`pixelwise_mlp` is the same function. Hidden layers use LeakyReLU(``negative_slope``); the last layer tanh (or none).

    Args:
        x: per-pixel MLP input, (B, C_in, H, W), H = h k, W = w k.
        params: per-tile parameters, (B, P, h, w), layout as :func:`split_mlp_params`.
        k: tile size.
        width: hidden width.
        depth: number of linear layers.
        out_channels: output channels.
        final_activation: "tanh" or "none".
        negative_slope: LeakyReLU slope of the hidden layers.

    Returns:
        (B, out_channels, H, W).
    """
    b, c, hh, ww = x.shape
    h, w = hh // k, ww // k
    if h * k != hh or w * k != ww:
        raise ValueError(f"input size {(hh, ww)} is not a multiple of the tile size k={k}")
    if params.shape[0] != b or tuple(params.shape[-2:]) != (h, w):
        raise ValueError(f"params shape {tuple(params.shape)} does not match a ({b}, P, {h}, {w}) grid")
    layers = split_mlp_params(params, mlp_channels(c, width, depth, out_channels))
    out = x.reshape(b, c, h, k, w, k)  # (B, C, h, k, w, k)
    out = out.permute(0, 2, 4, 3, 5, 1).reshape(b * h * w, k * k, c)  # (B*h*w, k*k, C): pixels row-major
    for i, (weight, bias) in enumerate(layers):
        out = torch.baddbmm(bias, out, weight)  # (B*h*w, k*k, C_out)
        if i < len(layers) - 1:
            out = F.leaky_relu(out, negative_slope)
        elif final_activation == "tanh":
            out = torch.tanh(out)
        elif final_activation != "none":
            raise ValueError(f"final_activation={final_activation!r} is not 'tanh' or 'none'")
    out = out.reshape(b, h, w, k, k, out_channels)  # (B, h, w, k, k, C_out)
    return out.permute(0, 5, 1, 3, 2, 4).reshape(b, out_channels, hh, ww)  # (B, C_out, H, W)


pixelwise_mlp = pixelwise_mlp_reference  # the name other modules call; same function


def positional_encoding_factors(
    k: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """The cosine positional encoding as a sum of a column term and a row term.

    Every channel of :func:`positional_encoding` depends on the column x only (cos and sin of
    x) or on the row y only, so ``pe[c, y, x] = pe_x[c, x] + pe_y[c, y]`` exactly, with the
    other factor zero on each channel. A linear layer on the encoding then splits into two
    k-long tables per tile (used by :func:`pixelwise_mlp_fast`).

    Args:
        k: the tile size, a power of two.
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        ``(pe_x, pe_y)``, each (4 log2 k, k).
    """
    pe = positional_encoding(k, device, dtype)  # (C_pe, k, k)
    along_x = (torch.arange(pe.shape[0], device=pe.device) % 4 < 2).view(-1, 1)  # (C_pe, 1): cos x, sin x
    zero = torch.zeros((), device=pe.device, dtype=pe.dtype)
    pe_x = torch.where(along_x, pe[:, 0, :], zero)  # (C_pe, k): row 0 of the x channels
    pe_y = torch.where(along_x, zero, pe[:, :, 0])  # (C_pe, k): column 0 of the y channels
    return pe_x, pe_y


def onehot_to_ids(label_onehot: Tensor) -> Tensor | None:
    """Label ids of an exactly one-hot map, or None when it is not one-hot.

    Candidate ids are ``round(sum_c c x_c)`` (one channel-weighted sum, a matrix-vector product:
    much cheaper than a max over the strided channel axis). The map is one-hot exactly when
    ``x[id] = 1`` at every pixel and the tensor has ``B H W`` non-zeros in all: then every
    pixel has one non-zero, and it is the 1 at ``id``.

    Args:
        label_onehot: (B, C, H, W).

    Returns:
        ``argmax_c x``, (B, H, W) int64, or None.
    """
    if label_onehot.ndim != 4 or label_onehot.shape[1] == 0 or not label_onehot.is_floating_point():
        return None
    b, c, h, w = label_onehot.shape
    ramp = torch.arange(c, device=label_onehot.device, dtype=torch.float32)  # (C,)
    weighted = torch.einsum("bchw,c->bhw", label_onehot.float(), ramp)  # (B, H, W): the id if one-hot
    ids = weighted.nan_to_num_(0.0).round_().clamp_(0, c - 1).long()  # (B, H, W)
    hit = label_onehot.gather(1, ids.unsqueeze(1))  # (B, 1, H, W): x at the candidate id
    if not bool((hit == 1).all()) or int(torch.count_nonzero(label_onehot)) != ids.numel():
        return None
    return ids


def pixelwise_mlp_fast(
    labels: Tensor,
    params: Tensor,
    k: int,
    *,
    label_nc: int | None = None,
    pe_factors: tuple[Tensor, Tensor] | None = None,
    width: int = 64,
    depth: int = 5,
    out_channels: int = OUT_CHANNELS,
    final_activation: Literal["tanh", "none"] = "tanh",
    negative_slope: float = MLP_NEGATIVE_SLOPE,
    chunk_pixels: int | None = None,
) -> Tensor:
    """The per-tile pixelwise MLP of :func:`pixelwise_mlp_reference` on labels + positional
    encoding, computed without building its input.

    The MLP input of a pixel is ``[labels, pe]`` (labels first). Its first layer,
    ``y = labels @ W_lab + pe @ W_pe + b``, is computed per tile as

    - labels given as integer ids (one-hot): ``labels @ W_lab = W_lab[id]``, a gather of weight
      rows (no multiply); labels given as features: a per-tile matmul on the label channels;
    - ``pe @ W_pe = (pe_x @ W_pe)[x] + (pe_y @ W_pe)[y]`` with ``(pe_x, pe_y)`` from
      :func:`positional_encoding_factors`: two (k, C_pe) x (C_pe, width) products per tile, added
      by broadcasting (the bias folds into the row term);

    the other layers are ``baddbmm`` (bias folded in) with in-place activations. On the CPU
    tiles are processed a few at a time (about ``chunk_pixels`` pixels) into reused buffers, so
    activations stay in cache and their memory does not grow with the image; on other devices
    one chunk holds every tile (few, large kernels). When autograd records, every layer
    allocates its output (one chunk), so the function is differentiable.

    Args:
        labels: integer label ids (B, H, W) in [0, label_nc), or label features (B, C_lab, H, W).
        params: per-tile parameters, (B, P, h, w) with H = h k, W = w k; layout of
            :func:`split_mlp_params` for ``mlp_channels(C_lab + C_pe, width, depth, out_channels)``.
        k: tile size.
        label_nc: number of label channels; required with ids, checked against features.
        pe_factors: ``(pe_x, pe_y)``, each (C_pe, k), or None for no positional encoding.
        width: hidden width.
        depth: number of linear layers.
        out_channels: output channels.
        final_activation: "tanh" or "none".
        negative_slope: LeakyReLU slope of the hidden layers.
        chunk_pixels: about how many pixels one chunk holds (at least one tile); None:
            :data:`CHUNK_PIXELS` on the CPU, the whole batch elsewhere.

    Returns:
        (B, out_channels, H, W), equal to :func:`pixelwise_mlp_reference` on the one-hot labels
        concatenated with the tiled encoding (up to float rounding).

    Raises:
        ValueError: shapes do not match, ``label_nc`` is missing, or an id is outside [0, label_nc).
    """
    if final_activation not in ("tanh", "none"):
        raise ValueError(f"final_activation={final_activation!r} is not 'tanh' or 'none'")
    use_ids = not labels.is_floating_point()
    if use_ids:
        if labels.ndim != 3:
            raise ValueError(f"label ids must be (B, H, W), got shape {tuple(labels.shape)}")
        if label_nc is None:
            raise ValueError("label_nc is required when labels are given as ids")
        b, hh, ww = labels.shape
        c_lab = label_nc
    else:
        b, c_lab, hh, ww = labels.shape
        if label_nc is not None and label_nc != c_lab:
            raise ValueError(f"labels have {c_lab} channels, label_nc={label_nc}")
    h, w = hh // k, ww // k
    if h * k != hh or w * k != ww:
        raise ValueError(f"input size {(hh, ww)} is not a multiple of the tile size k={k}")
    if params.ndim != 4 or params.shape[0] != b or tuple(params.shape[-2:]) != (h, w):
        raise ValueError(f"params shape {tuple(params.shape)} does not match a ({b}, P, {h}, {w}) grid")
    c_pe = 0
    if pe_factors is not None:
        pe_x, pe_y = pe_factors
        c_pe = pe_x.shape[0]
        if pe_x.shape != (c_pe, k) or pe_y.shape != (c_pe, k):
            raise ValueError(f"pe_factors shapes {tuple(pe_x.shape)}, {tuple(pe_y.shape)} are not ({c_pe}, {k})")
        pe_x_t = pe_x.t().to(params.dtype)  # (k, C_pe): row x = encoding of column x
        pe_y_t = pe_y.t().to(params.dtype)  # (k, C_pe): row y = encoding of row y
    channels = mlp_channels(c_lab + c_pe, width, depth, out_channels)
    expected = sum(co + ci * co for ci, co in zip(channels[:-1], channels[1:]))
    if params.shape[1] != expected:
        raise ValueError(f"params have {params.shape[1]} channels; MLP {channels} needs {expected}")
    if use_ids and labels.numel():
        lo, hi = torch.aminmax(labels)
        if int(lo) < 0 or int(hi) >= c_lab:
            raise ValueError(f"label ids span [{int(lo)}, {int(hi)}], outside [0, {c_lab})")

    dev, dtype = params.device, params.dtype
    kk, n_tiles, n_layers = k * k, b * h * w, len(channels) - 1
    # autograd cannot record into preallocated buffers: when it records, one chunk holds every
    # tile and each layer allocates its output
    record = torch.is_grad_enabled() and (params.requires_grad or labels.requires_grad)
    if chunk_pixels is None:
        chunk_pixels = CHUNK_PIXELS if dev.type == "cpu" else n_tiles * kk
    per_chunk = n_tiles if record else max(1, min(n_tiles, chunk_pixels // kk))  # tiles per chunk
    flat = params.permute(0, 2, 3, 1).reshape(n_tiles, -1)  # (N, P), N = B*h*w: no copy when params are channels-last
    if use_ids:
        tiles = labels.reshape(b, h, k, w, k).permute(0, 1, 3, 2, 4).reshape(n_tiles, kk)  # (N, k*k): pixels row-major
        offsets = torch.arange(per_chunk, device=dev).view(-1, 1) * c_lab  # (n, 1): tile t's rows in the gather table
    else:
        tiles = labels.reshape(b, c_lab, h, k, w, k).permute(0, 2, 4, 3, 5, 1).reshape(n_tiles, kk, c_lab)  # (N, k*k, C_lab)
    if record:
        bufs: list[Tensor | None] = [None] * n_layers
        pieces: list[Tensor] = []
    else:
        out_tiles = torch.empty(n_tiles, out_channels, kk, device=dev, dtype=dtype)  # (N, C_out, k*k)
        # ping-pong activation buffers, reused by every chunk; the last layer writes into out_tiles
        hidden = [torch.empty(per_chunk, kk, width, device=dev, dtype=dtype) for _ in range(min(2, n_layers - 1))]
        bufs = [hidden[i % 2] for i in range(n_layers - 1)] + [None]
        if n_layers == 1:  # the first layer is the last: it writes (n, k*k, C_out), transposed after
            bufs = [torch.empty(per_chunk, kk, out_channels, device=dev, dtype=dtype)]

    for t0 in range(0, n_tiles, per_chunk):
        n = min(per_chunk, n_tiles - t0)
        vec = flat[t0 : t0 + n]  # (n, P)
        cur = None
        idx = 0
        for li, (ci, co) in enumerate(zip(channels[:-1], channels[1:])):
            bias = vec[:, idx : idx + co].unsqueeze(1)  # (n, 1, C_out)
            idx += co
            weight = vec[:, idx : idx + ci * co].reshape(n, ci, co)  # (n, C_in, C_out)
            idx += ci * co
            if record:
                dst = None  # allocate
            elif li == n_layers - 1 and li > 0:
                dst = out_tiles[t0 : t0 + n]  # (n, C_out, k*k): transposed, see below
            else:
                dst = bufs[li][:n]  # (n, k*k, C_out)
            if li == 0:
                w_lab = weight[:, :c_lab]  # (n, C_lab, C_out)
                if use_ids:
                    rows = (tiles[t0 : t0 + n] + offsets[:n]).view(-1)  # (n*k*k,): row of W_lab in the table
                    table = w_lab.reshape(n * c_lab, co)  # (n*C_lab, C_out)
                    if dst is None:
                        cur = torch.index_select(table, 0, rows).view(n, kk, co)  # (n, k*k, C_out)
                    else:
                        torch.index_select(table, 0, rows, out=dst.view(n * kk, co))
                        cur = dst
                else:
                    x = tiles[t0 : t0 + n]  # (n, k*k, C_lab)
                    cur = torch.bmm(x, w_lab) if dst is None else torch.bmm(x, w_lab, out=dst)
                if c_pe:
                    w_pe = weight[:, c_lab:]  # (n, C_pe, C_out)
                    col_term = torch.matmul(pe_x_t, w_pe)  # (n, k, C_out): by column x
                    row_term = torch.baddbmm(bias, pe_y_t.expand(n, k, c_pe), w_pe)  # (n, k, C_out): by row y, + b
                    terms = (col_term.unsqueeze(1), row_term.unsqueeze(2))  # (n, 1, k, C_out), (n, k, 1, C_out)
                    shape = (n, k, k, co)  # (n, y, x, C_out)
                else:
                    terms, shape = (bias,), (n, kk, co)
                if dst is None:
                    cur4 = cur.view(shape)
                    for term in terms:
                        cur4 = cur4 + term
                    cur = cur4.view(n, kk, co)  # (n, k*k, C_out)
                else:
                    cur4 = cur.view(shape)
                    for term in terms:
                        cur4.add_(term)
            elif li == n_layers - 1:  # (li > 0) few outputs: (W^T h^T) keeps the long pixel axis as the matmul's N
                args = (bias.transpose(1, 2), weight.transpose(1, 2), cur.transpose(1, 2))  # (n, C_out, 1), (n, C_out, C_in), (n, C_in, k*k)
                cur = torch.baddbmm(*args) if dst is None else torch.baddbmm(*args, out=dst)  # (n, C_out, k*k)
            else:
                cur = torch.baddbmm(bias, cur, weight) if dst is None else torch.baddbmm(bias, cur, weight, out=dst)
            if li < n_layers - 1:
                cur = F.leaky_relu(cur, negative_slope) if dst is None else F.leaky_relu_(cur, negative_slope)
            elif final_activation == "tanh":
                cur = torch.tanh(cur) if dst is None else cur.tanh_()
        if n_layers == 1:
            cur = cur.transpose(1, 2)  # (n, C_out, k*k)
            if not record:
                out_tiles[t0 : t0 + n].copy_(cur)
        if record:
            pieces.append(cur)
    if record:
        out_tiles = torch.cat(pieces) if len(pieces) > 1 else pieces[0]  # (N, C_out, k*k)
    out = out_tiles.view(b, h, w, out_channels, k, k)  # (B, h, w, C_out, k, k)
    return out.permute(0, 3, 1, 4, 2, 5).reshape(b, out_channels, hh, ww)  # (B, C_out, H, W)
