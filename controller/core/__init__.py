"""The pure decision core: no I/O, no clients. Everything here is deterministic."""
