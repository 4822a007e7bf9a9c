"""The training loop (on accelerate), batching, optimizers and schedules."""
