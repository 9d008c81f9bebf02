"""Pre-write validation against Dataverse column metadata: what Dataverse would refuse is caught
before the call, with a reason a marketer can act on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.dataverse.models import AttributeMetadata
from shared.notices import FieldValue
from shared.sync.validation import Problem, describe, validate_write


def _column(
    name: str,
    kind: str = "String",
    *,
    required: str = "None",
    max_length: int | None = None,
    options: dict[int, str] | None = None,
    create: bool = True,
    update: bool = True,
) -> AttributeMetadata:
    return AttributeMetadata(
        logical_name=name,
        attribute_type=kind,
        required_level=required,
        valid_for_create=create,
        valid_for_update=update,
        valid_for_read=True,
        max_length=max_length,
        option_labels=options or {},
    )


COLUMNS = {
    c.logical_name: c
    for c in (
        _column("leadid", "Uniqueidentifier", required="SystemRequired", update=False),
        _column("ownerid", "Owner", required="SystemRequired"),
        _column("lastname", required="ApplicationRequired", max_length=50),
        _column("jobtitle", max_length=100),
        _column("subject", required="SystemRequired", max_length=300),
        _column("donotemail", "Boolean"),
        _column("numberofemployees", "Integer"),
        _column("revenue", "Money"),
        _column("leadsourcecode", "Picklist", options={1: "Advertisement", 8: "Web"}),
        _column("createdon", "DateTime", create=False, update=False),
        _column("estimatedclosedate", "DateTime"),
        _column("parentaccountid", "Lookup"),
    )
}


def _columns(problems: list[Problem]) -> list[str]:
    return [p.column for p in problems]


def test_a_clean_update_passes() -> None:
    values: dict[str, FieldValue] = {
        "jobtitle": "CTO",
        "donotemail": True,
        "leadsourcecode": 8,
        "revenue": 12.5,
        "numberofemployees": 3,
        "estimatedclosedate": "2026-11-20T09:14:02Z",
    }
    assert validate_write(COLUMNS, values, create=False) == []


def test_each_kind_of_problem_is_named_with_its_column() -> None:
    problems = validate_write(
        COLUMNS,
        {
            "jobtitle": "x" * 101,
            "donotemail": "yes",
            "numberofemployees": 2.5,
            "revenue": True,
            "leadsourcecode": 99,
            "createdon": "2026-01-01T00:00:00Z",
            "nosuchcolumn": 1,
            "subject": None,
            "estimatedclosedate": "next week",
            "parentaccountid": "9f1c0000-0000-4000-8000-000000000001",
        },
        create=False,
    )
    by_column = {p.column: p.message for p in problems}
    assert by_column == {
        "jobtitle": "is 101 characters long; the maximum is 100",
        "donotemail": "expects true or false, got 'yes'",
        "numberofemployees": "expects a whole number, got 2.5",
        "revenue": "expects a number, got True",
        "leadsourcecode": "99 is not one of its options (1, 8)",
        "createdon": "cannot be written on update",
        "nosuchcolumn": "is not a column of this table",
        "subject": "is required (SystemRequired) and cannot be empty",
        "estimatedclosedate": "expects an ISO 8601 date and time, got 'next week'",
        "parentaccountid": "is a reference to another row and cannot be synced as a value",
    }
    assert describe(problems).startswith("jobtitle is 101 characters long")


def test_business_required_only_when_the_mapping_asks() -> None:
    assert validate_write(COLUMNS, {"lastname": None}, create=False) == []
    (problem,) = validate_write(COLUMNS, {"lastname": None}, create=False, enforce_business_required=True)
    assert problem.column == "lastname"
    assert "ApplicationRequired" in problem.message


def test_a_create_needs_every_required_column_the_platform_does_not_fill() -> None:
    assert _columns(validate_write(COLUMNS, {"jobtitle": "CTO"}, create=True)) == ["subject"]
    assert validate_write(COLUMNS, {"subject": "Web"}, create=True) == []
    missing = validate_write(COLUMNS, {"subject": "Web"}, create=True, enforce_business_required=True)
    assert _columns(missing) == ["lastname"]


@given(st.text(max_size=120))
def test_text_within_the_maximum_always_passes_and_beyond_never(text: str) -> None:
    problems = validate_write(COLUMNS, {"jobtitle": text}, create=False)
    assert (problems == []) == (len(text) <= 100)


@given(st.one_of(st.integers(-5, 20), st.booleans(), st.text(max_size=3)))
def test_only_declared_options_pass(value: object) -> None:
    problems = validate_write(COLUMNS, {"leadsourcecode": value}, create=False)  # type: ignore[dict-item]
    ok = isinstance(value, int) and not isinstance(value, bool) and value in (1, 8)
    assert (problems == []) == ok
