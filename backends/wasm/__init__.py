"""WASI tasks: modules run with wasmtime under limits, a module store with a compile cache, a
local pool with history, and `wasi/wasm` OCI images."""
