"""The field mapping file: the default is valid, mistakes are named."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.mapping import Side, load_mapping, parse_mapping


def test_default_mapping_has_the_standard_fields_and_rules() -> None:
    mapping = load_mapping()
    assert mapping.lead.collision_winner is Side.MARKETO
    assert mapping.contact.collision_winner is Side.DYNAMICS
    names = {f.marketo for f in mapping.lead.fields}
    assert {
        "firstName",
        "lastName",
        "email",
        "company",
        "title",
        "phone",
        "mobilePhone",
        "city",
        "country",
        "leadSource",
        "msftDoNotEmail",
    } <= names


EMAIL = "{marketo: email, dynamics: emailaddress1, type: email}"
CONTACT = "contact: {collision_winner: dynamics, fields: [" + EMAIL + "]}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lead: [", "not valid YAML"),
        (
            "lead: {collision_winner: marketo, fields: [{marketo: email, dynamics: emailaddress1}]}\n"
            "contact: {}",
            "contact",
        ),
        (
            "lead: {collision_winner: marketo, fields: [{marketo: firstName, dynamics: firstname}]}\n"
            + CONTACT,
            "email field must be mapped",
        ),
        (
            "lead: {collision_winner: marketo, fields: ["
            + EMAIL
            + ", {marketo: x, dynamics: emailaddress1}]}\n"
            + CONTACT,
            "dynamics field mapped twice: emailaddress1",
        ),
        (
            "lead: {collision_winner: marketo, fields: [{marketo: email, dynamics: emailaddress1,"
            " type: email, direction: sideways}]}\n" + CONTACT,
            "direction",
        ),
        (
            "lead: {collision_winner: marketo, fields: ["
            + EMAIL
            + ", {marketo: src, dynamics: leadsourcecode, type: option}]}\n"
            + CONTACT,
            "needs a 'values' map",
        ),
    ],
)
def test_invalid_mappings_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_mapping(text, origin="test.yaml")
