"""A step's log as a driver writes it: bounded in lines and bytes, the tail kept, so a command that
prints without end cannot fill the database or the page."""

from __future__ import annotations

import codecs
from collections import deque

MAX_LINES = 1_000
MAX_BYTES = 256 * 1024
MAX_LINE_BYTES = 8 * 1024
"""A longer line is cut: one line alone never takes the whole log."""


class StepLog:
    """Lines written by a driver and the output of what it runs, newest kept.

    `write_bytes` takes raw output as it arrives (stdout and stderr interleaved), in chunks that may
    split lines or UTF-8 characters; `close()` ends the last line. `lines()` is what is kept, led by
    a line saying how many were dropped when any were."""

    def __init__(
        self, *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        if max_lines < 2 or max_bytes < 256 or max_line_bytes < 64:
            raise ValueError(
                f"StepLog limits too small: {max_lines} lines, {max_bytes} B, {max_line_bytes} B"
            )
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.max_line_bytes = min(max_line_bytes, max_bytes // 2)
        self._lines: deque[str] = deque()
        self._bytes = 0
        self.dropped = 0
        self._partial: list[str] = []
        self._partial_len = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, text: str) -> None:
        """One or more whole lines written by the driver itself."""
        for line in text.split("\n"):
            self._keep(line)

    def write_bytes(self, chunk: bytes) -> None:
        """Raw output; lines are completed by later chunks or by close()."""
        text = self._decoder.decode(chunk)
        while text:
            newline = text.find("\n")
            piece = text if newline < 0 else text[:newline]
            self._partial.append(piece)
            self._partial_len += len(piece)
            if self._partial_len > self.max_line_bytes:
                self._end_partial()
            if newline < 0:
                break
            self._end_partial()
            text = text[newline + 1 :]

    def close(self) -> None:
        """Ends a last line that had no line feed."""
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._partial.append(rest)
        if self._partial:
            self._end_partial()

    def lines(self) -> tuple[str, ...]:
        kept = tuple(self._lines)
        if self.dropped:
            return (f"[{self.dropped} earlier lines dropped: the log keeps its last {len(kept)}]", *kept)
        return kept

    def tail(self, count: int) -> tuple[str, ...]:
        return tuple(self._lines)[-count:]

    def _end_partial(self) -> None:
        self._keep("".join(self._partial).rstrip("\r"))
        self._partial.clear()
        self._partial_len = 0

    def _keep(self, line: str) -> None:
        data = line.encode("utf-8", errors="replace")
        if len(data) > self.max_line_bytes:
            cut = data[: self.max_line_bytes].decode("utf-8", errors="ignore")
            line = f"{cut} [line cut at {self.max_line_bytes} bytes]"
            data = line.encode()
        self._lines.append(line)
        self._bytes += len(data) + 1
        while len(self._lines) > self.max_lines or self._bytes > self.max_bytes:
            dropped = self._lines.popleft()
            self._bytes -= len(dropped.encode("utf-8", errors="replace")) + 1
            self.dropped += 1
