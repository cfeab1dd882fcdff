"""What a run logged to TensorBoard, for the tests that read it back."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def scalars(run: Path, tag: str) -> list[float]:
    """Every value logged under ``tag`` in the run folder ``run`` (its ``tb`` folder), in
    the order they were written."""
    events = EventAccumulator(str(Path(run) / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return [event.value for event in events.Scalars(tag)]
