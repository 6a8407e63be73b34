"""The ``tfao`` command, its aos-like terminal and the demo."""
