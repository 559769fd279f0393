"""The packed compressed format: the bytes a budget's ``size`` counts.

Layout (little-endian)::

    b"NBPK" | version u8 | tensor count u32 | tensor*

    tensor  = name_len u16 | name utf-8 | dtype u8 | ndim u8 | shape u32*ndim | encoding u8 | payload

Encodings, chosen per tensor as the smallest that reproduces it bit-exactly:

* ``RAW``: the tensor's bytes (every non-weight tensor: biases, norms, buffers);
* ``CODES``: ``bits u8 | k u16 | codebook f32*k | codes`` (k-bit codes, bit-packed) for
  weights with at most 256 distinct values (quantised weights);
* ``MASK_RAW`` / ``MASK_CODES``: a bitmask of non-zeros (1 bit per element) then the
  non-zero values raw or as codes;
* ``INDEX_RAW`` / ``INDEX_CODES``: ``nnz u32`` and the flat indices of non-zeros (u16 when
  the tensor has < 65,536 elements, else u32) then the values raw or as codes.

Only float32 tensors with two or more dimensions (conv / linear weights) get the sparse and
code encodings; "zero" means the bit pattern +0.0, so ``-0.0`` survives the round trip.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping

import numpy as np
import torch

from netbudget.exceptions import InvalidArgumentError

__all__ = ["MAGIC", "pack_state_dict", "packed_size", "unpack_state_dict"]

MAGIC = b"NBPK"
VERSION = 1
RAW, CODES, MASK_RAW, MASK_CODES, INDEX_RAW, INDEX_CODES = range(6)
MAX_CODEBOOK = 256

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool]
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.int64: np.int64,
          torch.int32: np.int32, torch.int8: np.int8, torch.uint8: np.uint8, torch.bool: np.bool_}


def _pack_bits(codes: np.ndarray, bits: int) -> bytes:
    planes = ((codes[:, None].astype(np.uint32) >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(planes.ravel(), bitorder="little").tobytes()


def _unpack_bits(data: bytes, count: int, bits: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits, bitorder="little")
    return (planes.reshape(count, bits).astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(1)


def _values_payload(words: np.ndarray) -> tuple[bool, bytes]:
    """Encode float32 bit patterns as raw words or k-bit codes, whichever is smaller."""
    raw = words.astype("<u4").tobytes()
    codebook, codes = np.unique(words, return_inverse=True)
    if len(codebook) <= MAX_CODEBOOK and len(words) > 0:
        bits = max(1, int(np.ceil(np.log2(max(len(codebook), 2)))))
        coded = struct.pack("<BH", bits, len(codebook)) + codebook.astype("<u4").tobytes() + _pack_bits(codes, bits)
        if len(coded) < len(raw):
            return True, coded
    return False, raw


def _encode_weight(tensor: torch.Tensor) -> tuple[int, bytes]:
    words = tensor.detach().contiguous().view(torch.int32).numpy().ravel().view(np.uint32)
    numel = words.size
    nonzero = words != 0
    options: list[tuple[int, bytes]] = []
    coded, payload = _values_payload(words)
    options.append((CODES if coded else RAW, payload))
    if not nonzero.all():
        coded_nz, payload_nz = _values_payload(words[nonzero])
        mask = np.packbits(nonzero, bitorder="little").tobytes()
        options.append((MASK_CODES if coded_nz else MASK_RAW, mask + payload_nz))
        index_dtype = "<u2" if numel < 65536 else "<u4"
        index = struct.pack("<I", int(nonzero.sum())) + np.flatnonzero(nonzero).astype(index_dtype).tobytes()
        options.append((INDEX_CODES if coded_nz else INDEX_RAW, index + payload_nz))
    return min(options, key=lambda option: len(option[1]))


def pack_state_dict(state: Mapping[str, torch.Tensor]) -> bytes:
    """Pack every tensor of ``state`` into the compressed format (see the module docstring)."""
    out = io.BytesIO()
    out.write(MAGIC + struct.pack("<BI", VERSION, len(state)))
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise InvalidArgumentError(f"State entry {name!r} is a {type(tensor).__name__}, not a tensor.")
        if tensor.dtype not in _DTYPES:
            raise InvalidArgumentError(f"Tensor {name!r} has unsupported dtype {tensor.dtype}.")
        encoded = name.encode()
        out.write(struct.pack("<H", len(encoded)) + encoded)
        out.write(struct.pack("<BB", _DTYPES.index(tensor.dtype), tensor.dim()))
        out.write(struct.pack(f"<{tensor.dim()}I", *tensor.shape))
        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.float32 and tensor.dim() >= 2 and tensor.numel() > 0:
            encoding, payload = _encode_weight(tensor)
        else:
            encoding, payload = RAW, _raw_bytes(tensor)
        out.write(struct.pack("<B", encoding) + payload)
    return out.getvalue()


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    if tensor.dtype == torch.bfloat16:
        return tensor.contiguous().view(torch.int16).numpy().tobytes()
    return tensor.contiguous().numpy().tobytes()


def packed_size(state: Mapping[str, torch.Tensor]) -> int:
    """Exact length in bytes of ``pack_state_dict(state)``."""
    return len(pack_state_dict(state))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidArgumentError(f"Packed data is truncated at byte {self.pos} (needs {n} more).")
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _read_values(reader: _Reader, count: int, coded: bool) -> np.ndarray:
    if not coded:
        return np.frombuffer(reader.take(4 * count), dtype="<u4")
    bits, k = reader.unpack("<BH")
    codebook = np.frombuffer(reader.take(4 * k), dtype="<u4")
    codes = _unpack_bits(reader.take((count * bits + 7) // 8), count, bits)
    return codebook[codes]


def unpack_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """Inverse of ``pack_state_dict``: every tensor bit-exactly as packed.

    Raises:
        InvalidArgumentError: the data is not in the packed format or is truncated.
    """
    reader = _Reader(data)
    if reader.take(4) != MAGIC:
        raise InvalidArgumentError("Not a netbudget packed file (bad magic bytes).")
    version, count = reader.unpack("<BI")
    if version != VERSION:
        raise InvalidArgumentError(f"Packed format version {version} is not supported (expected {VERSION}).")
    state: dict[str, torch.Tensor] = {}
    for _ in range(count):
        (name_len,) = reader.unpack("<H")
        name = reader.take(name_len).decode()
        dtype_code, ndim = reader.unpack("<BB")
        shape = reader.unpack(f"<{ndim}I")
        (encoding,) = reader.unpack("<B")
        dtype = _DTYPES[dtype_code]
        numel = int(np.prod(shape)) if ndim else 1
        if encoding == RAW:  # the tensor's own bytes, whatever its dtype (float32 bits included)
            itemsize = torch.empty(0, dtype=dtype).element_size()
            raw = reader.take(itemsize * numel)
            if dtype == torch.bfloat16:
                tensor = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16)
            else:
                tensor = torch.from_numpy(np.frombuffer(raw, dtype=_NUMPY[dtype]).copy())
            state[name] = tensor.reshape(shape)
            continue
        if encoding in (RAW, CODES):
            words = _read_values(reader, numel, encoding == CODES)
        elif encoding in (MASK_RAW, MASK_CODES):
            nonzero = np.unpackbits(
                np.frombuffer(reader.take((numel + 7) // 8), dtype=np.uint8), count=numel, bitorder="little"
            ).astype(bool)
            words = np.zeros(numel, dtype="<u4")
            words[nonzero] = _read_values(reader, int(nonzero.sum()), encoding == MASK_CODES)
        elif encoding in (INDEX_RAW, INDEX_CODES):
            (nnz,) = reader.unpack("<I")
            index_dtype = "<u2" if numel < 65536 else "<u4"
            index = np.frombuffer(reader.take(nnz * np.dtype(index_dtype).itemsize), dtype=index_dtype)
            words = np.zeros(numel, dtype="<u4")
            words[index.astype(np.int64)] = _read_values(reader, nnz, encoding == INDEX_CODES)
        else:
            raise InvalidArgumentError(f"Tensor {name!r} has unknown encoding {encoding}.")
        state[name] = torch.from_numpy(words.astype(np.uint32).view(np.float32).copy()).reshape(shape)
    if reader.pos != len(reader.data):
        raise InvalidArgumentError(f"Packed data has {len(reader.data) - reader.pos} trailing bytes.")
    return state
