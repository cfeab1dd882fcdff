"""The synthetic task under residual control over schedule-free SGD, for the tests of the
actions that only schedule-free SGD takes (``beta_factor``) and of what actions cost."""

SCHEDULE_FREE = {
    "dataset": "synthetic",
    "model": "mlp",
    "batch_size": 64,
    "total_steps": 60,
    "steps_per_action": 10,
    "action_mode": "residual",
    "base_schedule": {"kind": "constant", "lr": 0.1},
    "optimizer": "schedule_free",
    "warmup_steps": 10,
    "device": "cpu",
}
