"""Controllers and baselines for lrenv: PPO set up as in the paper, hand-written schedules
with the same ``predict`` interface, evaluation, and a learned drop-in LR scheduler."""
