"""The model runtime: model sources, tokenization, the model cache and ``tfao.pipeline``."""
