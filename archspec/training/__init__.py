"""Training and running models: the loop, data, logs, model evaluation and the latency bench.
Everything here imports torch."""
