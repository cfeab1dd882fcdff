"""A training run killed after a checkpoint, for the tests of ``--resume``."""

from stable_baselines3.common.callbacks import BaseCallback

from agents.run_folder import RunDir


class Crash(Exception):
    """Stands for a run killed after a checkpoint."""


class CrashAfterCheckpoint(BaseCallback):
    """Raise at the first rollout that starts after a checkpoint of >= 4 episodes."""

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run

    def _on_rollout_start(self) -> None:
        checkpoint = self.run.last_checkpoint()
        if checkpoint is not None and checkpoint.progress["episodes_done"] >= 4:
            raise Crash

    def _on_step(self) -> bool:
        return True
