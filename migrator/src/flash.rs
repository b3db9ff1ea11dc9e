//! Streaming flash engine: verify, decompress, write, read back.
