"""Reading descriptor files into entity drafts; pure: no database, no network."""

from quarterdeck.catalog.descriptors.drafts import (
    Draft,
    PersonDraft,
    Problem,
    ServiceDraft,
    SystemDraft,
    TeamDraft,
)
from quarterdeck.catalog.descriptors.files import FileOutcome, FileResult, read_descriptor_file

__all__ = [
    "Draft",
    "FileOutcome",
    "FileResult",
    "PersonDraft",
    "Problem",
    "ServiceDraft",
    "SystemDraft",
    "TeamDraft",
    "read_descriptor_file",
]
