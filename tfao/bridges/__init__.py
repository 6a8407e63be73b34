"""The host side of the modules a process can ``require``: ``weavedrive`` and ``transformers``."""
