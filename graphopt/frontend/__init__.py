"""Front ends: the only part of graphopt that imports onnx (and, later, torch)."""
