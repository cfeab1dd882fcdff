"""What a run logged to TensorBoard, for the tests that read it back."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _events(run: Path, tag: str) -> list:
    events = EventAccumulator(str(Path(run) / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars(tag)


def scalars(run: Path, tag: str) -> list[float]:
    """Every value logged under ``tag`` in the run folder ``run`` (its ``tb`` folder), in
    the order they were written."""
    return [event.value for event in _events(run, tag)]


def steps(run: Path, tag: str) -> list[int]:
    """The x coordinate (time step) of every value logged under ``tag``, in order."""
    return [event.step for event in _events(run, tag)]
