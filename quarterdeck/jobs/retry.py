"""How long a failed job waits before its next attempt, and when it stops trying: pure rules."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap and proportional jitter.

    The wait after the n-th failed attempt is `base_seconds * factor ** (n - 1)`, capped at
    `max_seconds`, then moved by up to `jitter` of itself either way so that jobs that failed together
    (an outage) do not all come back at the same instant. After `max_attempts` failed attempts there is
    no next delay: the job is parked.
    """

    max_attempts: int = 5
    base_seconds: float = 2.0
    factor: float = 2.0
    max_seconds: float = 600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"Backoff max_attempts is {self.max_attempts}: at least 1 attempt is needed")
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("Backoff base_seconds and max_seconds cannot be negative")
        if self.factor < 1:
            raise ValueError(f"Backoff factor is {self.factor}: waits must not shrink (factor >= 1)")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"Backoff jitter is {self.jitter}: expected a fraction in [0, 1)")

    def next_delay(self, attempts: int, rng: random.Random) -> float | None:
        """Seconds to wait after `attempts` failed attempts (1 after the first failure), or None when
        the attempts have run out."""
        if attempts < 1:
            raise ValueError(f"attempts is {attempts}: a delay follows at least one failed attempt")
        if attempts >= self.max_attempts:
            return None
        try:
            raw = self.base_seconds * self.factor ** (attempts - 1)
        except OverflowError:  # far past the cap already
            raw = self.max_seconds
        delay = min(raw, self.max_seconds)
        if self.jitter:
            delay *= 1 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, delay)


NO_RETRY = Backoff(max_attempts=1)
"""For handlers whose failures are never worth repeating automatically."""
