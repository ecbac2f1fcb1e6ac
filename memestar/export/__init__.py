"""`meme export`: a meme folder -> checked ONNX graphs and FP16 TensorRT engines under its `export/`."""
