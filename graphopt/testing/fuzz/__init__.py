"""graphopt's own fuzz campaign: bad input and faults against the API and the CLI, each
case classified (clean error, accepted, traceback, crash, hang, accepted-invalid,
refused-valid, partial output left, read outside the folder, corrupt state later).

    python -m graphopt.testing.fuzz            # the fast fixed-seed sample
    python -m graphopt.testing.fuzz --full     # every case (about 10 minutes on 2 cores)
"""

from .campaign import run
from .outcome import CATEGORIES, PASSING

__all__ = ["CATEGORIES", "PASSING", "run"]
