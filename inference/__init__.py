"""Local LLM serving: GPTQ checkpoints, Triton kernels, the model, the engine and the server.

Sees token ids, weights and HTTP; knows nothing about posts. Runs as its own process.
"""
