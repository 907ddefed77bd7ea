"""The schedule axis: how long to train and on what."""

from obliviate.schedules.base import SCHEDULES, EpochsSchedule, Schedule

__all__ = ["SCHEDULES", "EpochsSchedule", "Schedule"]
