"""The sandbox: the Lua 5.3 VM, the aos process library that runs in it, and the fork host of each process."""
