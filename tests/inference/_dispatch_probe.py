"""A torch dispatch recorder for "can this be captured as a CUDA graph?" checks on the CPU.

Records every aten op with the shapes and dtypes of its tensor arguments, and flags host syncs:
scalar reads (`.item()`, `int(t)`, `bool(t)`), nonzero/equal, and device-to-host copies. A CUDA graph
replays a fixed op sequence on fixed shapes and cannot contain a sync, so a step whose recorded
signature is the same for different inputs and which records no sync is safe to capture.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = ("_local_scalar_dense", "aten.item", "nonzero", "aten.equal", "aten.is_nonzero")


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []
        self.signature: list[tuple] = []  # (op, ((shape, dtype), ...)) per call
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        tensors_in = [a for a in args if isinstance(a, torch.Tensor)]
        self.ops.append(name)
        self.signature.append((name, tuple((tuple(t.shape), t.dtype) for t in tensors_in)))
        if any(bad in name for bad in SYNC_OPS):
            self.syncs.append(name)
        out = func(*args, **kwargs)
        if "copy" in name:  # a copy landing on the host from an accelerator
            dst = out if isinstance(out, torch.Tensor) else tensors_in[0]
            if dst.device.type == "cpu" and any(t.device.type != "cpu" for t in tensors_in):
                self.syncs.append(f"{name} (device to host)")
        return out
