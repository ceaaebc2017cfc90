"""Real models without downloads: the CNNs shipped in the onnx wheel.

The light models build every weight with ``ConstantOfShape(0.02)``, so all their logits
come out equal: a numeric check on them as shipped proves little. `randomized_light_model`
replaces those weights with random ones of the same shapes (fan-in scaled for rank >= 2;
1-D tensors by role: BatchNorm variances in [0.5, 1.5], so never near zero, scales in
[0.2, 0.6], biases and means in [-0.1, 0.1]), and drops the final Softmax so tests compare logits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LIGHT_MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                "squeezenet", "vgg19", "zfnet512"]


def light_model_dir() -> Path:
    import onnx.backend.test

    return Path(os.path.dirname(onnx.backend.test.__file__)) / "data" / "light"


def light_model_path(name: str) -> Path:
    name = name.removeprefix("light_")
    p = light_model_dir() / f"light_{name}.onnx"
    if not p.exists():
        raise FileNotFoundError(f"no light model {name!r}; there are: {', '.join(LIGHT_MODELS)}")
    return p


def randomized_light_model(name: str, seed: int = 0, drop_softmax: bool = True):
    """The light model ``name`` as an onnx.ModelProto with random weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(light_model_path(name)))
    g = model.graph
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    # BatchNormalization inputs by slot: scale, bias, mean, var. Small scales keep deep
    # residual stacks (their running statistics are fixed) from growing without bound.
    bn_role = {}
    for n in g.node:
        if n.op_type == "BatchNormalization":
            for slot, name in enumerate(n.input[1:5], start=1):
                bn_role[name] = slot
    ranges = {1: (0.2, 0.6), 2: (-0.1, 0.1), 3: (-0.1, 0.1), 4: (0.5, 1.5)}
    new_nodes = []
    made = []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = [int(d) for d in numpy_helper.to_array(inits[n.input[0]])]
            if len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
                arr = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            else:
                lo, hi = ranges.get(bn_role.get(n.output[0], 0), (-0.1, 0.1))
                arr = rng.uniform(lo, hi, shape)
            made.append(numpy_helper.from_array(arr.astype(np.float32), n.output[0]))
        else:
            new_nodes.append(n)
    if drop_softmax and new_nodes and new_nodes[-1].op_type == "Softmax":
        last = new_nodes.pop()
        for o in g.output:
            if o.name == last.output[0]:
                o.name = last.input[0]
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(made)
    # Opset-9 models list initializers as inputs too; keep only the real data inputs.
    used = {i for n in g.node for i in n.input}
    init_names = {t.name for t in g.initializer}
    keep = [i for i in g.input if i.name not in init_names]
    keep = [i for i in keep if i.name in used]
    del g.input[:]
    g.input.extend(keep)
    # Drop initializers nothing reads any more (the __SHAPE tensors).
    live = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    if model.ir_version < 4:
        model.ir_version = 4
    del g.value_info[:]  # Softmax keeps its input's shape, so the outputs' types still hold
    return model


def light_model_inputs(model, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float inputs in [-1, 1] for a (randomized or shipped) light model."""
    import onnx

    rng = np.random.default_rng(seed)
    init_names = {t.name for t in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name in init_names:
            continue
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        assert i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        feeds[i.name] = rng.uniform(-1, 1, shape).astype(np.float32)
    return feeds
