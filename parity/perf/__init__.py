"""Measuring speed and memory. options (shapes, tasks, the options and their defaults), bench (the run: build
every implementation, time each case, measure memory and the matmul ceiling), timing (round-robin repeats),
results (rows, matches, ratios, warnings, tables), flops (the FLOP count and matmul ceiling), peak_memory (CPU
and CUDA peaks). `led-parity bench` is parity.commands.bench."""
