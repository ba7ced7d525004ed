"""Fixtures of the job tests: writer sessions on the test's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.db import writer_sessions


@pytest.fixture
def writers(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    return writer_sessions(sessions)
