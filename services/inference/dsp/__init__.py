"""Signal-processing building blocks shared by the pipelines (numpy/scipy/pedalboard only).

Every function takes float32 ``(channels, frames)`` arrays; the streaming classes keep just
enough state (filter memories, a few hundred milliseconds of context) to process a long file
block by block in bounded memory.
"""
