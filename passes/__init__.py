"""graphopt's passes, one per module; importing this package registers them all with
`graphopt.pipeline.register_pass` (installed as ``graphopt.passes``)."""

from . import (cse, dce, fold_constants, fuse_attention, fuse_cache_write, fuse_conv_bn, fuse_gelu,  # noqa: F401
               fuse_layer_norm, fuse_rms_norm, fuse_rotary, fuse_swiglu, group_kernels, quantize_dynamic, quantize_static,
               quantize_weights, shapes,
               simplify)

__all__ = ["cse", "dce", "fold_constants", "fuse_attention", "fuse_cache_write", "fuse_conv_bn", "fuse_gelu",
           "fuse_layer_norm", "fuse_rms_norm", "fuse_rotary", "fuse_swiglu", "group_kernels", "quantize_dynamic", "quantize_static",
           "quantize_weights", "shapes",
           "simplify"]
