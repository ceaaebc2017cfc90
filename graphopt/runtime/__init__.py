"""The runtime: a compiled model's stages (TVM executables, onnxruntime regions), its
checked inputs, and loading an artifact folder into it. Apart from the compiler: running or
loading a model lowers and builds nothing."""

from .inputs import InputError
from .model import CompiledModel

__all__ = ["CompiledModel", "InputError"]
