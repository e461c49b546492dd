"""Measuring speed and memory: bench (the runs and tables), flops (the FLOP count and matmul ceiling),
peak_memory (CPU and CUDA peaks). `led-parity bench` is parity.commands.bench."""
