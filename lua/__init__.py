"""The Lua side of Transformers-AO: the aos process library and the bridged modules."""
