"""Op definitions: importing this package registers every supported op (ONNX opset 21
semantics of the default domain)."""

from . import attention, cache, control, elementwise, fused, misc, nn, reduce, rms_norm, rotary, swiglu, tensor  # noqa: F401
