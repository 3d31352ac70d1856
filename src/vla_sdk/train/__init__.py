"""Fine-tuning: config, pure train step, data-parallel sharding, orbax checkpoints, the resumable loop."""
