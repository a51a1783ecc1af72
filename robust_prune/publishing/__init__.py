"""Publishing: save, load, check and push a model as data (config, weights, record, card), or export it to ONNX."""
