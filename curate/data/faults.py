"""Named points in a run where the reliability tests kill curate, to prove a kill anywhere is survivable.

``CURATE_KILL_AT=<point>`` makes the process send itself SIGKILL when it reaches ``<point>``: no
cleanup handler, ``finally`` block or buffered write runs, exactly as with ``kill -9`` or a lost
machine. With ``CURATE_KILL_ONCE=<file>`` as well, only the first process to reach the point dies (it
creates the file): a worker that is retried then gets past it. Unset (always, outside tests) a checkpoint
is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "decode",             # half the images decoded
    "network",            # inside a job: its dense network trained, its copies not (kills the worker)
    "train",              # one network finished and stored, the others not
    "score",              # population complete, nothing scored yet
    "store",              # probabilities written, the per-sample table not
    "fiftyone:samples",   # some new samples added to the dataset
    "fiftyone:record",    # run recorded as incomplete, no field written yet
    "fiftyone:fields",    # the run's fields written on half of the samples
    "fiftyone:tags",      # fields written, tags applied, no Brain run yet
    "fiftyone:brain",     # hardness computed, mistakenness not
    "fiftyone:views",     # some saved views written
    "fiftyone:complete",  # everything written, run not yet marked complete
    "calibrate",          # curate calibrate: audited field written, reasons and views not
    "report",             # report HTML half written
)


def checkpoint(point: str) -> None:
    if os.environ.get("CURATE_KILL_AT") == point:
        once = os.environ.get("CURATE_KILL_ONCE")
        if once:
            try:
                os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)
