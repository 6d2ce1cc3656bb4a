"""Errors of the inference package: bad tensors, configs and checkpoints the user can fix.

`inference/` runs as its own process and imports nothing from `rag/` or `bot/`, so it keeps its own
base class. It subclasses `ValueError` so callers that only know Python's builtins still catch it;
the CLI edge (`bot/cli/main.py`) and the server map it to one line / an error envelope.
"""


class InferenceError(ValueError):
    """A tensor, setting or checkpoint that cannot work; the message names it and the problem."""


class CheckpointError(InferenceError):
    """A checkpoint folder is missing files or tensors, or holds tensors of the wrong shape/dtype."""


class KernelInputError(InferenceError):
    """A kernel was called with tensors of the wrong dtype, shape, device or layout."""


class QuantizeError(InferenceError):
    """Quantization cannot run: bad bits/group size, non-finite calibration activations, no data."""
