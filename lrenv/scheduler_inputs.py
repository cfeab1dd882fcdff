"""What the drop-in scheduler reads from a user's training script: the model's layer the
weight features come from, the validation data, the loss, the optimizer's evaluated
weights (schedule-free's average), checked with messages that say what to pass instead."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from lrenv.checks import check_integer
from lrenv.models import final_linear


@contextlib.contextmanager
def evaluated_weights(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Within: the weights an evaluation reads. For schedule-free optimizers (those with
    ``train()``/``eval()``, e.g. ``schedulefree.SGDScheduleFree``) that is their average,
    as in the env; the training mode is restored after. Other optimizers: unchanged."""
    switch_eval = getattr(optimizer, "eval", None)
    switch_train = getattr(optimizer, "train", None)
    groups = getattr(optimizer, "param_groups", [])
    schedule_free = callable(switch_eval) and callable(switch_train)
    was_training = schedule_free and bool(groups and groups[0].get("train_mode", True))
    if schedule_free:
        switch_eval()
    try:
        yield
    finally:
        if was_training:
            switch_train()


def positive_int(value: Any, name: str) -> int:
    return check_integer(value, name, numpy_ints=True)


def loss_value(loss: torch.Tensor | float) -> torch.Tensor | float:
    """A detached scalar tensor (left on its device) or a float."""
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(f"the loss must be a single number, got shape {tuple(loss.shape)}")
        return loss.detach().reshape(())
    if isinstance(loss, bool) or not isinstance(loss, int | float | np.floating | np.integer):
        raise TypeError(f"the loss must be a float or a tensor, got {type(loss).__name__}")
    return float(loss)


def cpu(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().cpu().clone()


def device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def find_feature_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """The module whose weights give the weight features."""
    if layer is None:
        try:
            return final_linear(model)
        except ValueError as err:
            raise ValueError(
                f"{err}; name the layer whose weights the controller should read with "
                "feature_layer='name' (see model.named_modules())"
            ) from None
    if isinstance(layer, str):
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            names = [name for name, _ in model.named_modules() if name]
            raise ValueError(
                f"feature_layer {layer!r} is not a submodule of {type(model).__name__}; "
                f"its submodules: {', '.join(names)}"
            ) from None
    elif isinstance(layer, nn.Module):
        module = layer
        if not any(m is module for m in model.modules()):
            raise ValueError("feature_layer is not a module of the model")
    else:
        raise TypeError(f"feature_layer must be a name or an nn.Module, got {type(layer)}")
    if not isinstance(getattr(module, "weight", None), torch.Tensor):
        raise ValueError(f"feature_layer {type(module).__name__} has no weight tensor")
    return module


def validation_tensors(val_data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors from the forms ``val_data`` may take; ValueError for wrong shapes."""
    if hasattr(val_data, "images") and hasattr(val_data, "labels"):
        x, y = val_data.images, val_data.labels
    elif (
        isinstance(val_data, tuple | list)
        and len(val_data) == 2
        and all(isinstance(v, torch.Tensor | np.ndarray) for v in val_data)
    ):
        x, y = val_data
    elif isinstance(val_data, Iterable) and not isinstance(val_data, torch.Tensor | np.ndarray):
        batches = list(val_data)
        if not batches or not all(isinstance(b, tuple | list) and len(b) == 2 for b in batches):
            raise ValueError("val_data as an iterable must yield (x, y) batches")
        x = torch.cat([torch.as_tensor(b[0]) for b in batches])
        y = torch.cat([torch.as_tensor(b[1]) for b in batches])
    else:
        raise ValueError(
            "val_data must be (x, y) tensors, an object with images and labels, or an "
            f"iterable of (x, y) batches; got {type(val_data).__name__}"
        )
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() < 2:
        raise ValueError(f"val_data inputs must be (N, ...) with N examples, got {tuple(x.shape)}")
    if y.dim() != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(
            f"val_data labels must be a 1-D tensor of class indices, got shape "
            f"{tuple(y.shape)} and dtype {y.dtype}"
        )
    if len(x) != len(y):
        raise ValueError(f"val_data has {len(x)} inputs but {len(y)} labels")
    if len(y) < 2:
        raise ValueError("val_data needs at least 2 examples (the features are variances)")
    if int(y.min()) < 0:
        raise ValueError("val_data labels must be class indices >= 0")
    return x, y.long()
