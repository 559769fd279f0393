"""Artifacts: the packed compressed format (ONNX and torch artifacts join it with the pipeline)."""

from __future__ import annotations

from netbudget.export.packed import pack_state_dict, packed_size, unpack_state_dict

__all__ = ["pack_state_dict", "packed_size", "unpack_state_dict"]
