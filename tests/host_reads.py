"""Counting the reads of tensor values on the host in one call (tests/test_model_hot_paths.py,
tests/test_training_hot_paths.py): on a GPU each such read stalls the host until the device has caught up."""

import torch
from torch.overrides import TorchFunctionMode


HOST_SYNC_OPS = ("aten::_local_scalar_dense", "aten::item")
VALUE_READS = {"item", "tolist", "numpy", "__array__", "__bool__", "__int__", "__float__", "__index__", "__complex__"}


class RecordValueReads(TorchFunctionMode):
    """Records the Tensor methods that copy a value into Python. The profiler sees `.item()` and `bool(tensor)`
    (aten::_local_scalar_dense) but not `.tolist()` or `.numpy()`, which read the data without dispatching an op."""

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", None) in VALUE_READS:
            self.reads.append(func.__name__)
        return func(*args, **(kwargs or {}))


def host_reads(call, model: torch.nn.Module | None = None) -> tuple[dict[str, int], list[str]]:
    """(profiler counts of the ops that copy a tensor value to the host, the value-reading Tensor methods in call
    order, with "forward" where `model`'s forward began when a model is given) of one call of `call`, after a
    warm-up call."""
    call()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        with RecordValueReads() as mode:
            hook = model.register_forward_pre_hook(lambda *args: mode.reads.append("forward")) if model else None
            try:
                call()
            finally:
                if hook is not None:
                    hook.remove()
    names = [event.name for event in profile.events()]
    return {op: names.count(op) for op in HOST_SYNC_OPS}, mode.reads
