"""The Marketo Engage REST client (Lead Database, Activities, custom activities, bulk APIs)."""

from shared.marketo.bulk_extract import ExportJob, LeadExportClient, date_windows
from shared.marketo.bulk_import import ImportFile, ImportIssue, ImportJob, LeadImportClient, import_files
from shared.marketo.client import MarketoClient
from shared.marketo.models import (
    Activity,
    ActivityPage,
    CustomActivityResult,
    CustomActivityType,
    CustomActivityTypeSpec,
    FieldDescription,
    PushResult,
    Reason,
)

__all__ = [
    "Activity",
    "ActivityPage",
    "CustomActivityResult",
    "CustomActivityType",
    "CustomActivityTypeSpec",
    "ExportJob",
    "FieldDescription",
    "ImportFile",
    "ImportIssue",
    "ImportJob",
    "LeadExportClient",
    "LeadImportClient",
    "MarketoClient",
    "PushResult",
    "Reason",
    "date_windows",
    "import_files",
]
