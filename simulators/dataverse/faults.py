"""Dataverse error answers: the ``{"error":{"code","message"}}`` envelope and the codes used.

Codes come from the Dataverse web service error list (reference §4.3). Where the reference marks
a code or status "unconfirmed", the choice made here is named in simulators/README.md.
"""

from __future__ import annotations

from typing import Any

OBJECT_DOES_NOT_EXIST = "0x80040217"
RECORD_NOT_FOUND_BY_KEY = "0x80060891"
CONCURRENCY_VERSION_MISMATCH = "0x80060882"
DUPLICATE_RECORD = "0x80040237"
DUPLICATE_RECORD_ENTITY_KEY = "0x80060892"
STRING_TOO_LONG = "0x80044331"
PICKLIST_OUT_OF_RANGE = "0x8004431A"
INVALID_ARGUMENT = "0x80040203"
ISV_ABORTED = "0x80040265"
LEAD_ALREADY_CLOSED = "0x80040519"
PAYLOAD_ERROR = "0x80048d19"
ODATA_ERROR = "0x80060888"
CHANGE_TRACKING_NOT_ENABLED = "0x80072491"
PRIVILEGE_DENIED = "0x80040220"
NOT_A_MEMBER = "0x80072560"
REQUESTS_LIMIT = "0x80072322"
EXECUTION_TIME_LIMIT = "0x80072321"
CONCURRENCY_LIMIT = "0x80072326"
UNEXPECTED = "0x80040216"
BULK_NOT_SUPPORTED = "0x80040800"
# Missing SystemRequired value: the exact code is unconfirmed; the platform's generic
# "required attribute" validation is reported with InvalidArgument-family code 0x80040203 here.
REQUIRED_MISSING = INVALID_ARGUMENT


class DataverseFault(Exception):
    """An error answer: HTTP status, Dataverse code, message, extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def envelope(self, *, annotations: bool = False) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if annotations:
            error["@Microsoft.PowerApps.CDS.ErrorDetails.OperationStatus"] = "0"
            error["@Microsoft.PowerApps.CDS.HelpLink"] = (
                "http://go.microsoft.com/fwlink/?LinkID=398563"
                f"&error=Microsoft.Crm.CrmException%3a{self.code[2:]}&client=platform"
            )
            error["@Microsoft.PowerApps.CDS.InnerError.Message"] = self.message
        return {"error": error}


def payload_error(entity_set: str, detail: str) -> DataverseFault:
    """The wording Dataverse uses when the JSON body does not fit the entity type."""
    return DataverseFault(
        400,
        PAYLOAD_ERROR,
        f"Error identified in Payload provided by the user for Entity :'{entity_set}', For more "
        "information on this error please follow this help link "
        "https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : "
        f"Microsoft.OData.ODataException: {detail}",
    )


def odata_error(message: str, status: int = 400) -> DataverseFault:
    return DataverseFault(status, ODATA_ERROR, message)


def not_found(logical: str, row_id: str) -> DataverseFault:
    return DataverseFault(404, OBJECT_DOES_NOT_EXIST, f"{logical} With Id = {row_id} Does Not Exist")


def not_found_by_key(logical: str) -> DataverseFault:
    return DataverseFault(
        404,
        RECORD_NOT_FOUND_BY_KEY,
        f"A record with the specified key values does not exist in {logical} entity",
    )
