"""A packed file format for compressed weights: the bits of ``model_size_bits`` on disk.

``lib.quant.size.model_size_bits`` counts what a compressed layer *should* take: ``b`` bits a
stored entry, the index of the chosen sparse format (``bitmask``: one bit a weight;
``relative``: ``index_bits`` a stored entry, gaps beyond ``2^index_bits`` bridged by stored
filler zeros) and, for a quantized layer, a float32 codebook of ``2^b`` entries. This module
writes exactly those streams, bit-packed, so a reader can check that the accounting is a
size a file can have:

    file bytes = sum_l [ceil(codebook_l / 8) + ceil(index_l / 8) + ceil(values_l / 8)]
                 + header bytes + extra tensors (biases, norms: not counted by the papers)

i.e. the accounted bits, each of a layer's three streams padded to whole bytes (at most
3 x 7 bits a layer), plus a JSON header and the float32 tensors the accounting leaves out.
``read_packed`` gives back every tensor bit for bit.

Value codes: a layer of ``b < 32`` bits stores each entry as a ``b``-bit index into its
codebook (``2^b`` float32 values, unused slots 0); ``b = 32`` stores the raw float32 bits
and no codebook. A zero is stored without its sign (``-0.0`` reads back as ``0.0``). A
relative-index filler is an entry of value 0, so a quantized layer that needs fillers must
have 0 among its ``2^b`` codebook values (as Deep Compression's codebooks do); a layer
whose ``2^b`` codes are all nonzero raises, and a bitmask index or one more bit is the way
out. ``index="none"`` stores every weight and suits dense layers.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .size import INDEX_FORMATS, model_size_bits

MAGIC = b"BKPACK1\n"


@dataclass(frozen=True)
class PackSpec:
    """How one weight tensor is stored: ``bits`` a value, the sparse ``index`` format."""

    bits: int = 32
    index: str = "none"
    index_bits: int = 4

    def __post_init__(self):
        if self.index not in INDEX_FORMATS:
            raise ValueError(f"index must be one of {INDEX_FORMATS}, got {self.index!r}")
        if not 1 <= self.bits <= 32:
            raise ValueError(f"bits must lie in 1..32, got {self.bits}")

    @property
    def codebook(self) -> bool:
        return self.bits < 32


def accounted_bits(weight: torch.Tensor, spec: PackSpec) -> int:
    """``model_size_bits`` of one tensor stored as ``spec`` (what the packed streams hold)."""
    return model_size_bits([weight], spec.bits, index=spec.index, index_bits=spec.index_bits,
                           codebook=spec.codebook).total_bits


# ----------------------------------------------------------------------------- bit streams
def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Unsigned integers ``< 2^bits``, each written in ``bits`` bits (MSB first), padded to
    a whole byte at the end."""
    codes = np.asarray(codes, dtype=np.uint64).ravel()
    if codes.size == 0:
        return b""
    if bits < 64 and int(codes.max()) >> bits:
        raise ValueError(f"a code exceeds {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bit_matrix = ((codes[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bit_matrix.ravel()).tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_codes``: ``count`` integers of ``bits`` bits."""
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = np.uint64(1) << np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return (flat.reshape(count, bits).astype(np.uint64) * weights).sum(1, dtype=np.uint64)


def _float_bits(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().to(torch.float32).contiguous().numpy().view(np.uint32)


def _nbytes(bits: int) -> int:
    return (bits + 7) // 8


# ----------------------------------------------------------------------------- one layer
def relative_entries(flat: torch.Tensor, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries of the relative-index format: gap fields (``gap - 1`` in ``index_bits``
    bits) and the stored values (fillers are zeros), as ``relative_index_entries`` counts."""
    span = 2 ** index_bits
    pos = torch.nonzero(flat).flatten().numpy()
    gaps = np.diff(pos, prepend=-1)
    n_entries = (gaps + span - 1) // span  # fillers + the nonzero itself
    fields = np.full(int(n_entries.sum()), span - 1, dtype=np.uint64)  # filler: gap = span
    last = np.cumsum(n_entries) - 1  # the nonzero closes its run of entries
    fields[last] = (gaps - (n_entries - 1) * span - 1).astype(np.uint64)
    values = np.zeros(fields.size, dtype=np.float32)
    values[last] = flat.numpy()[pos]
    return fields, values


def _encode_values(values: np.ndarray, bits: int, name: str) -> tuple[bytes, bytes]:
    """(codebook bytes, value stream bytes) of float32 ``values``."""
    if bits == 32:
        return b"", pack_codes(values.view(np.uint32), 32)
    book = np.unique(values)
    if book.size > 2 ** bits:
        raise ValueError(f"{name}: {book.size} distinct stored values do not fit a {bits}-bit "
                         f"codebook (a relative-index filler needs 0 among them: use a "
                         f"bitmask index or one more bit)")
    full = np.zeros(2 ** bits, dtype=np.float32)
    full[: book.size] = book
    codes = np.searchsorted(book, values)
    return full.tobytes(), pack_codes(codes, bits)


def encode_tensor(weight: torch.Tensor, spec: PackSpec, name: str = "weight"
                  ) -> dict[str, bytes | int]:
    """The codebook, index and value streams of one tensor, and its entry count."""
    flat = weight.detach().cpu().to(torch.float32).flatten()
    if spec.index == "none":
        if bool((flat == 0).any()):
            raise ValueError(f"{name} has zeros: index='none' stores only dense layers "
                             f"(choose 'bitmask' or 'relative')")
        index, values = b"", flat.numpy()
    elif spec.index == "bitmask":
        nz = (flat != 0).numpy()
        index, values = np.packbits(nz.astype(np.uint8)).tobytes(), flat.numpy()[nz]
    else:
        fields, values = relative_entries(flat, spec.index_bits)
        index = pack_codes(fields, spec.index_bits)
    book, stream = _encode_values(values, spec.bits, name)
    return {"codebook": book, "index": index, "values": stream, "entries": int(values.size)}


def decode_tensor(streams: dict[str, bytes], shape: tuple[int, ...], spec: PackSpec,
                  entries: int) -> torch.Tensor:
    """Inverse of ``encode_tensor``."""
    numel = math.prod(shape)
    if spec.bits == 32:
        values = unpack_codes(streams["values"], 32, entries).astype(np.uint32).view(np.float32)
    else:
        book = np.frombuffer(streams["codebook"], dtype=np.float32)
        values = book[unpack_codes(streams["values"], spec.bits, entries).astype(np.int64)]
    out = np.zeros(numel, dtype=np.float32)
    if spec.index == "none":
        out[:] = values
    elif spec.index == "bitmask":
        nz = np.unpackbits(np.frombuffer(streams["index"], dtype=np.uint8))[:numel].astype(bool)
        out[nz] = values
    else:
        gaps = unpack_codes(streams["index"], spec.index_bits, entries).astype(np.int64) + 1
        pos = np.cumsum(gaps) - 1
        out[pos] = values  # fillers write their zero
    return torch.from_numpy(out).view(shape)


# ----------------------------------------------------------------------------- files
@dataclass
class PackReport:
    """Bytes of a packed file against the accounting of the weights it holds."""

    file_bytes: int
    accounted_bits: int
    header_bytes: int
    padding_bits: int
    extra_bytes: int
    layers: list[dict]

    @property
    def overhead_bytes(self) -> int:
        """Everything beyond the accounted bits: header, extras, byte padding."""
        return self.file_bytes - self.accounted_bits / 8

    @property
    def weight_bytes(self) -> int:
        """The bytes of the accounted streams (padded to bytes)."""
        return self.file_bytes - self.header_bytes - self.extra_bytes


def write_packed(path: str | Path, weights: dict[str, torch.Tensor],
                 specs: dict[str, PackSpec], extras: dict[str, torch.Tensor] | None = None
                 ) -> PackReport:
    """Write ``weights`` (each stored by ``specs[name]``) and ``extras`` (raw float32, for
    biases and norms) to ``path``; return the sizes. The file is
    ``MAGIC | uint32 header length | JSON header | streams | extras``."""
    extras = extras or {}
    layers, blobs, accounted, padding = [], [], 0, 0
    for name, w in weights.items():
        spec = specs[name]
        enc = encode_tensor(w, spec, name)
        bits = accounted_bits(w, spec)
        stream_bytes = len(enc["codebook"]) + len(enc["index"]) + len(enc["values"])
        accounted += bits
        padding += 8 * stream_bytes - bits
        layers.append({"name": name, "shape": list(w.shape), "bits": spec.bits,
                       "index": spec.index, "index_bits": spec.index_bits,
                       "entries": enc["entries"], "codebook": len(enc["codebook"]),
                       "index_bytes": len(enc["index"]), "values_bytes": len(enc["values"]),
                       "accounted_bits": bits, "stored_bytes": stream_bytes})
        blobs += [enc["codebook"], enc["index"], enc["values"]]
    extra_meta, extra_blobs = [], []
    for name, t in extras.items():
        raw = t.detach().cpu().to(torch.float32).contiguous().numpy().tobytes()
        extra_meta.append({"name": name, "shape": list(t.shape), "bytes": len(raw)})
        extra_blobs.append(raw)
    header = json.dumps({"layers": layers, "extras": extra_meta},
                        separators=(",", ":")).encode()
    prefix = MAGIC + struct.pack("<I", len(header)) + header
    path = Path(path)
    path.write_bytes(prefix + b"".join(blobs) + b"".join(extra_blobs))
    return PackReport(file_bytes=path.stat().st_size, accounted_bits=accounted,
                      header_bytes=len(prefix), padding_bits=padding,
                      extra_bytes=sum(len(b) for b in extra_blobs), layers=layers)


def read_packed(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a packed file (weights and extras), bit for bit as written."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a packed weight file")
    (n,) = struct.unpack("<I", data[len(MAGIC): len(MAGIC) + 4])
    offset = len(MAGIC) + 4
    meta = json.loads(data[offset: offset + n])
    offset += n
    out: dict[str, torch.Tensor] = {}
    for layer in meta["layers"]:
        streams = {}
        for key, size in (("codebook", layer["codebook"]), ("index", layer["index_bytes"]),
                          ("values", layer["values_bytes"])):
            streams[key] = data[offset: offset + size]
            offset += size
        spec = PackSpec(layer["bits"], layer["index"], layer["index_bits"])
        out[layer["name"]] = decode_tensor(streams, tuple(layer["shape"]), spec,
                                           layer["entries"])
    for extra in meta["extras"]:
        raw = np.frombuffer(data[offset: offset + extra["bytes"]], dtype=np.float32).copy()
        out[extra["name"]] = torch.from_numpy(raw).view(tuple(extra["shape"]))
        offset += extra["bytes"]
    return out


def best_spec(weight: torch.Tensor, bits: int, index_bits: int = 4) -> PackSpec:
    """The smallest accounted storable format of ``weight`` at ``bits``: dense when it has
    no zeros, else the smaller of bitmask and relative index (relative only where its
    fillers are storable)."""
    if not bool((weight == 0).any()):
        return PackSpec(bits, "none", index_bits)
    options = [PackSpec(bits, "bitmask", index_bits)]
    rel = PackSpec(bits, "relative", index_bits)
    try:
        encode_tensor(weight, rel)
        options.append(rel)
    except ValueError:
        pass
    return min(options, key=lambda s: accounted_bits(weight, s))
