"""Where population jobs run. The science never sees this: it receives finished arrays.

A job is one network of the population (a member seed and the fold it leaves out) together with
its compressed copies. Jobs are independent, so any engine that can map a function over a list
can run them; :class:`InProcessExecutor` runs them one after another in this process. A distributed
engine (Ray, Dask, a queue of GPU workers) implements the same ``map``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class MemberJob:
    """Train member ``member`` (seed ``seed``) on every fold but ``fold``; score ``fold``."""

    member: int
    fold: int
    seed: int

    @property
    def name(self) -> str:
        return f"member{self.member:02d}-fold{self.fold:02d}"


class Executor(Protocol):
    def map(self, fn: Callable[[MemberJob], R], jobs: Iterable[MemberJob]) -> Iterator[tuple[MemberJob, R]]:
        """Run ``fn`` on every job, yielding ``(job, result)`` as each finishes (any order)."""


class InProcessExecutor:
    """Run jobs sequentially in this process (the default, and what the tests use)."""

    def map(self, fn: Callable[[MemberJob], R], jobs: Iterable[MemberJob]) -> Iterator[tuple[MemberJob, R]]:
        for job in jobs:
            yield job, fn(job)
