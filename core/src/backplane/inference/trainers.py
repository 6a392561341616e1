"""Collecting the trainers plugins register (``register_trainers``)."""

from __future__ import annotations

from typing import Any

from backplane._contract import Trainer, higher_is_better
from backplane.inference.registry import NAME
from backplane.plugins import PluginSet, check_owned_name


def _trainer_items(plugin: str, *trainers: Any) -> list[Trainer]:
    for trainer in trainers:
        if not isinstance(trainer, Trainer):
            raise TypeError(f"register_trainers expects Trainer values, got {trainer!r}")
        check_owned_name(plugin, trainer.name, "trainer", "plugin.what_it_learns")
        if not NAME.match(trainer.model):
            raise ValueError(f"trainer {trainer.name!r}: {trainer.model!r} is not a model name")
        try:
            higher_is_better(trainer.metric)
        except ValueError as exc:
            raise ValueError(f"trainer {trainer.name!r}: {exc}") from None
        if not callable(trainer.fit):
            raise TypeError(f"trainer {trainer.name!r}: fit must be callable")
    return list(trainers)


def collect_trainers(plugins: PluginSet) -> dict[str, Trainer]:
    """Every registered trainer by name (a later plugin's replaces an earlier one's)."""
    return {t.name: t for _, t in plugins.collect("register_trainers", _trainer_items)}
