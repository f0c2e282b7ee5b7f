"""Benchmarks behind ``semjscc bench``: each measures and returns a JSON-able report.

``throughput``: the OFDM PHY in GNU Radio against GNU Radio's own OFDM chain; ``runtime``: ONNX
Runtime against torch eager; ``soak``: thousands of frames through one simulated flowgraph under
random channels, and the receiver's false frames on signal-free input. They sit above every
layer they measure (GNU Radio blocks, the runtime, torch) and nothing imports them but the CLI.
"""
