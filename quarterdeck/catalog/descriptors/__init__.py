"""Reading descriptor files into entity drafts; pure: no database, no network."""

from quarterdeck.catalog.descriptors.drafts import (
    Draft,
    PersonDraft,
    Problem,
    ServiceDraft,
    SystemDraft,
    TeamDraft,
)
from quarterdeck.catalog.descriptors.files import (
    FileOutcome,
    FileResult,
    read_descriptor_file,
    report_refusal,
)
from quarterdeck.catalog.descriptors.limits import MAX_FILE_BYTES, Refused

__all__ = [
    "MAX_FILE_BYTES",
    "Draft",
    "FileOutcome",
    "FileResult",
    "PersonDraft",
    "Problem",
    "Refused",
    "ServiceDraft",
    "SystemDraft",
    "TeamDraft",
    "read_descriptor_file",
    "report_refusal",
]
