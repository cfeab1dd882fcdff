"""The controller's observation: the paper's seven training-dynamics features, and extras.

One function computes them for the env, the batched env and the drop-in scheduler, so the
three always agree. Inputs may carry leading batch dimensions (one per trainee).

Definitions (``P`` probe examples, ``C`` classes, ``p`` the softmax of the logits):

====  =================  ===================================================================
 #    name               value
====  =================  ===================================================================
 0    train_loss         mean cross-entropy of the training batches since the last decision
 1    val_loss           mean cross-entropy on the validation subset
 2    pred_var           mean over classes of the variance over probe examples of ``p``
 3    pred_change_var    the same variance of ``p - p_prev`` (``p_prev``: at the previous
                         decision; 0 at reset)
 4    weight_mean        mean of the final dense layer's weight matrix
 5    weight_var         variance of the final dense layer's weight matrix
 6    log10_lr           log10 of the learning rate in effect
 7    progress           fraction of the episode's SGD steps done (optional extra)
 8    log2_run_epochs    ``log2(1 + E)``, ``E`` the passes over the training set the
                         whole run makes (optional extra; entry 7 without ``progress``)
====  =================  ===================================================================

``log2_run_epochs`` tells tasks apart by how often the trainee sees each example: a run
over a few thousand examples at a large batch makes tens of epochs where one over 50,000
makes one. It is fixed before the first step (total steps x batch size / training
examples), so a controller can act on it from its first decision.

With ``feature_transform="log"`` entries 2, 3 and 5 are replaced by ``log10(v + 1e-10)``:
raw, they span orders of magnitude, which an MLP controller reads poorly.

``feature_transform="relative"`` makes every entry but the rate mean the same on any task,
whatever its number of classes, width or initialisation scale (for task sets, where one
controller meets many tasks): the two losses as ratios to the validation loss at reset
(``L / L_0``; 1 at the start, below 1 once training works); the variance features as
under ``"log"``; the weight mean in units of the weights' standard deviation at reset, and
``log10`` of the weight variance over its value at reset (0 at the start). The rate stays
``log10`` of the absolute rate: which rate trains well is what the controller must find.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

PAPER_FEATURES = (
    "train_loss",
    "val_loss",
    "pred_var",
    "pred_change_var",
    "weight_mean",
    "weight_var",
    "log10_lr",
)
EXTRA_FEATURES = ("progress",)
FEATURE_NAMES = PAPER_FEATURES + EXTRA_FEATURES
EPOCHS_FEATURE = "log2_run_epochs"
"""The entry ``epochs_feature`` appends, after ``progress`` when both are on."""
FEATURE_TRANSFORMS = ("raw", "log", "relative")
_LOGGED = (2, 3, 5)  # variance features, log-scaled under feature_transform="log"
LOG_EPS = 1e-10


@dataclass(frozen=True)
class FeatureReference:
    """What ``feature_transform="relative"`` measures against, taken at reset.

    Attributes:
        loss: the validation loss before any SGD step (``L_0``).
        weight_std: the standard deviation of the final dense layer's weights then.
    """

    loss: float
    weight_std: float

    @classmethod
    def at_reset(cls, val_loss: float, weight: torch.Tensor) -> FeatureReference:
        """The reference of a trainee whose initial validation loss and final-layer weight
        are given (a zero weight matrix counts as a standard deviation of 1)."""
        std = float(weight.detach().double().std(unbiased=False))
        return cls(loss=float(val_loss), weight_std=std if std > 0 else 1.0)


def feature_names(progress_feature: bool, epochs_feature: bool = False) -> tuple[str, ...]:
    """Names of the observation entries for a given configuration."""
    names = FEATURE_NAMES if progress_feature else PAPER_FEATURES
    return (*names, EPOCHS_FEATURE) if epochs_feature else names


def feature_names_of(env_kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """:func:`feature_names` for an env's keywords (a missing keyword is off)."""
    return feature_names(
        bool(env_kwargs.get("progress_feature", False)),
        bool(env_kwargs.get("epochs_feature", False)),
    )


def prediction_variance(probs: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the variance over examples: ``(..., P, C) -> (...)``."""
    return probs.var(dim=-2, unbiased=False).mean(dim=-1)


def compute_features(
    *,
    train_loss: torch.Tensor | float,
    val_loss: torch.Tensor | float,
    probs: torch.Tensor,
    prev_probs: torch.Tensor,
    weight: torch.Tensor,
    lr: torch.Tensor | float,
    progress: torch.Tensor | float | None = None,
    epochs: torch.Tensor | float | None = None,
    transform: str = "raw",
    reference: FeatureReference | None = None,
) -> np.ndarray:
    """The observation vector(s), float32.

    Args:
        train_loss: mean training loss since the last decision, shape ``(...)``.
        val_loss: validation loss, shape ``(...)``.
        probs: softmax predictions on the probe set, ``(..., P, C)``.
        prev_probs: the same at the previous decision (``probs`` itself at reset).
        weight: the final dense layer's weight, ``(..., out, in)``.
        lr: the learning rate in effect, shape ``(...)``.
        progress: fraction of the episode done; ``None`` leaves the entry out.
        epochs: passes over the training set the whole run makes (total SGD steps x
            batch size / training examples); the entry is ``log2(1 + epochs)``; ``None``
            leaves it out.
        transform: ``"raw"`` (the paper), ``"log"`` (log10 of the variance features) or
            ``"relative"`` (scale-free; see the module docstring).
        reference: the values at reset that ``"relative"`` divides by (required there).

    Returns:
        ``(..., 7)`` to ``(..., 9)`` float32 array, ordered as :func:`feature_names`. A
        value beyond float32's range (a diverged trainee's loss, say) becomes float32's
        largest, not infinity: far beyond ``OBS_LIMIT`` either way, without the overflow
        warning of the cast.
    """
    if transform not in FEATURE_TRANSFORMS:
        raise ValueError(
            f"unknown feature_transform {transform!r}; choose one of {FEATURE_TRANSFORMS}"
        )
    with torch.no_grad():
        flat_weight = weight.flatten(start_dim=-2).double()
        columns = [
            torch.as_tensor(train_loss, dtype=torch.float64),
            torch.as_tensor(val_loss, dtype=torch.float64),
            prediction_variance(probs.double()),
            prediction_variance(probs.double() - prev_probs.double()),
            flat_weight.mean(dim=-1),
            flat_weight.var(dim=-1, unbiased=False),
            torch.log10(torch.as_tensor(lr, dtype=torch.float64)),
        ]
        if progress is not None:
            columns.append(torch.as_tensor(progress, dtype=torch.float64))
        if epochs is not None:
            columns.append(torch.log2(1.0 + torch.as_tensor(epochs, dtype=torch.float64)))
        device = columns[2].device
        stacked = torch.stack(torch.broadcast_tensors(*[c.to(device) for c in columns]), dim=-1)
        if transform == "relative":
            if reference is None:
                raise ValueError("feature_transform='relative' needs the reference at reset")
            stacked[..., 0:2] = stacked[..., 0:2] / reference.loss
            stacked[..., 4] = stacked[..., 4] / reference.weight_std
            stacked[..., 5] = stacked[..., 5] / reference.weight_std**2
        if transform in ("log", "relative"):
            stacked[..., _LOGGED] = torch.log10(stacked[..., _LOGGED] + LOG_EPS)
        largest = float(np.finfo(np.float32).max)
        stacked = stacked.clamp(-largest, largest)  # NaN stays NaN
    return stacked.cpu().numpy().astype(np.float32)
