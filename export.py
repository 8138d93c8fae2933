"""Export a trained model to ONNX, checked against PyTorch with onnxruntime:
``python export.py --checkpoint T/model.pt [--out FILE.onnx] [--height H --width W]`` (``--help`` lists every flag)."""
from commands.errors import run
from commands.export import main

if __name__ == "__main__":
    raise SystemExit(run(main))
