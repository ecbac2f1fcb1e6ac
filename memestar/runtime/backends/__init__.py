"""The backends a meme runs on, behind one contract (`base.py`): torch (the reference, with CUDA graphs and an
optional compiled UNet), ONNX Runtime and TensorRT on a meme's export (`graph_backend.py`), and which one runs here
(`choice.py`)."""
