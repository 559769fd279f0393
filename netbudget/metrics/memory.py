"""Peak activation memory of one forward pass."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["peak_activation_bytes"]


class _LiveTensorBytes(TorchDispatchMode):
    """Track bytes of storages created by operators while any tensor still refers to them."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # data_ptr -> [live tensors, nbytes]

    def _release(self, ptr: int) -> None:
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            ptr = tensor.untyped_storage().data_ptr()
            if ptr == 0:
                continue
            entry = self._refs.get(ptr)
            if entry is None:
                entry = self._refs[ptr] = [0, tensor.untyped_storage().nbytes()]
                self.live += entry[1]
                self.peak = max(self.peak, self.live)
            entry[0] += 1
            weakref.finalize(tensor, self._release, ptr)
        return out


def peak_activation_bytes(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Peak bytes of intermediate tensors alive at once during one inference forward pass.

    Every tensor an operator creates is counted from its creation until the last tensor
    sharing its storage is freed (views and in-place operations add nothing), so skip
    connections and concatenations that keep activations alive are accounted for. The
    input and the weights are not activations and are excluded; kernels' internal scratch
    buffers are invisible at this level and excluded too, which keeps the number a property
    of the network and batch size rather than of one kernel library.

    Args:
        model: the network (not modified; run in eval mode without gradients).
        input_shape: full input shape including the batch, e.g. ``(32, 1, 28, 28)``.
    """
    was_training = model.training
    model.eval()
    x = torch.zeros(*input_shape)
    tracker = _LiveTensorBytes()
    try:
        with torch.no_grad(), tracker:
            model(x)
    finally:
        model.train(was_training)
    return int(tracker.peak)
