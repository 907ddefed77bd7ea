"""The schedule axis: how long to train and on what."""

from obliviate.schedules.base import SCHEDULES, EpochsSchedule, ForgetTarget, Schedule, ScheduleContext
from obliviate.schedules import alternating, icu, unseen  # noqa: E402,F401  (registration)

__all__ = ["SCHEDULES", "EpochsSchedule", "ForgetTarget", "Schedule", "ScheduleContext"]
