"""Reading descriptor files into entity drafts; pure: no database, no network. The bounded YAML loader
(load_documents: size, nesting, alias and node limits) is exported for the other YAML the portal reads."""

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
from quarterdeck.catalog.descriptors.yaml_documents import Document, YamlSyntaxError, load_documents

__all__ = [
    "MAX_FILE_BYTES",
    "Document",
    "Draft",
    "FileOutcome",
    "FileResult",
    "PersonDraft",
    "Problem",
    "Refused",
    "ServiceDraft",
    "SystemDraft",
    "TeamDraft",
    "YamlSyntaxError",
    "load_documents",
    "read_descriptor_file",
    "report_refusal",
]
