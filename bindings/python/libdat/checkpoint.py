"""Training checkpoints (dat_checkpoint.h): model, optimizer state and position."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Optional

from ._lib import CheckpointInfo, lib
from .errors import check
from .model import Model
from .optim import Optimizer


@dataclass
class Position:
    epoch: int = 0        # epochs completed
    step: int = 0         # optimizer steps completed
    attack_step: int = 0  # the attack's step counter


def save_checkpoint(path: str, model: Model, optim: Optional[Optimizer] = None,
                    position: Position = Position(), config: Optional[str] = None) -> None:
    """Writes model (and optimizer) state and the position atomically to path."""
    info = CheckpointInfo(ctypes.sizeof(CheckpointInfo), position.epoch, position.step,
                          position.attack_step)
    check(lib.dat_checkpoint_save(path.encode(), model.handle,
                                  optim.handle if optim is not None else None,
                                  ctypes.byref(info),
                                  config.encode() if config is not None else None))


def load_checkpoint(path: str, model: Model, optim: Optional[Optimizer] = None,
                    max_config: int = 1 << 16) -> tuple[Position, str]:
    """Restores a checkpoint; returns its position and stored configuration text."""
    info = CheckpointInfo()
    info.size = ctypes.sizeof(CheckpointInfo)
    config = ctypes.create_string_buffer(max_config)
    check(lib.dat_checkpoint_load(path.encode(), model.handle,
                                  optim.handle if optim is not None else None,
                                  ctypes.byref(info), config, max_config))
    return Position(info.epoch, info.step, info.attack_step), config.value.decode()
