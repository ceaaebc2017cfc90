"""The tags of graphopt's own kernels: each kernel's TE compute carries its tag as a block
annotation (`TAG_KEY`), which TVM keeps through fusion and into the scheduled block, and
names its PrimFunc after it; the schedule rules find their kernel by the tag. The one
place these names are spelled."""

from __future__ import annotations

TAG_KEY = "graphopt_kernel"      # block annotation: which graphopt kernel the block computes
BLOCK_KEY = "graphopt_bn"        # block annotation: the packed output-channel block

CONV2D = "gconv"                 # kernels.conv2d: packed NCHW conv2d
DENSE = "gdense"                 # kernels.dense: packed matmul with constant weights
ATTENTION = "gattn"              # kernels.attention: online-softmax attention (hand-scheduled)

TAGS = (CONV2D, DENSE, ATTENTION)

