"""Training a GAN: torch only, one process or `torchrun` ranks, resumable.

config.py        TrainConfig: YAML keys and `--set` overrides, their types and ranges (torch-free)
plan.py          what a run will do, checked before its first step: spec, schedule, epoch order
loop.py          the training loop, top to bottom, and the hooks it reports through
checkpoints.py   checkpoint files: atomic writes, newest first, resumable or refused
distributed.py   devices and ranks: process group, gradient all-reduce, state broadcast
files.py         a bare run's reports as files, and their replay into a tracking run
__main__.py      the bare trainer: `python -m prodgan.training` (`torchrun ... -m prodgan.training`)

Nothing is imported here, so reading a config does not import torch.
"""
