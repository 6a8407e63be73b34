"""The model runtime: model sources (``sources``), tokenization, the family registry (``registry``), the
model cache (``cache``), ``tfao.pipeline`` (``pipelines``) and one runtime module per family (``bert``)."""
