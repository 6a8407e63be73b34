from .allocator import keep_freed_memory

keep_freed_memory()
