"""No email address reaches a log line, in any form it can take on the way there: plain,
percent-encoded (once or twice) in a request line, JSON- or repr-escaped, full-width, quoted,
upper-case, with non-ASCII letters, or echoed in an exception message; and whatever logger logs
it, since the redaction sits at the root of the logging tree (the record factory)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.redaction import decoded, install_log_redaction, mask_email, redact

ATEXT = "!#$%'*+-/=^_`{|}~"  # RFC 5322 atext besides letters and digits (not ? and &: see redaction)
letters = st.characters(categories=("Ll", "Lu", "Nd", "Lo"), max_codepoint=0x2FFF)
local_parts = st.text(alphabet=letters | st.sampled_from(ATEXT), min_size=2, max_size=16).filter(
    lambda t: "%" not in t[:3] and t.strip() == t
)
labels = st.text(alphabet=letters | st.just("-"), min_size=1, max_size=10).filter(
    lambda t: not t.startswith("-") and not t.endswith("-")
)
domains = st.builds(lambda a, b: f"{a}.{b}", labels, st.sampled_from(["example", "com", "org", "de"]))

FORMS: dict[str, Callable[[str, str], str]] = {
    "plain": lambda lo, do: f"{lo}@{do}",
    "upper": lambda lo, do: f"{lo}@{do}".upper(),
    "percent-encoded": lambda lo, do: quote(f"{lo}@{do}", safe=""),
    "twice encoded": lambda lo, do: quote(quote(f"{lo}@{do}", safe=""), safe=""),
    "request line": lambda lo, do: (
        f'https://x.mktorest.com:443 "GET /rest/v1/leads.json?filterType=email&filterValues='
        f'{quote(lo + "@" + do, safe="")},bo%40y.example&fields=id HTTP/1.1" 200 51'
    ),
    "form body": lambda lo, do: f"_method=GET&filterValues={quote(lo + '@' + do)}",
    "json": lambda lo, do: json.dumps({"email": f"{lo}@{do}"}),
    "repr": lambda lo, do: repr([f"{lo}@{do}"]),
    "full-width at": lambda lo, do: f"{lo}\uff20{do}",
    "quoted": lambda lo, do: f'"{lo} {lo}"@{do}',
    "in a sentence": lambda lo, do: f"Invalid value '{lo}@{do}'. Required of type 'email'",
}


def leaked(local: str, domain: str, text: str) -> bool:
    """Whether ``text`` shows more of the address than its first character and its domain (the
    mask itself, ``***@``, is set apart first: a local part ending in ``*`` would match it)."""
    plain = decoded(text).casefold().replace("***@", "\x00@")
    return f"{local[1:]}@".casefold() in plain or f"{local} {local}".casefold() in plain


@settings(max_examples=300)
@given(local=local_parts, domain=domains, form=st.sampled_from(sorted(FORMS)))
@example(local="0*", domain="0.example", form="plain")
def test_no_form_of_an_address_survives_redaction(local: str, domain: str, form: str) -> None:
    """Issue 12, fault 5: URL-encoded and non-ASCII addresses reached the logs (half-masked)."""
    text = FORMS[form](local, domain)
    assert not leaked(local, domain, redact(text)), redact(text)


@given(local=local_parts, domain=domains)
def test_the_mask_keeps_the_first_character_and_the_domain(local: str, domain: str) -> None:
    assert mask_email(f"{local}@{domain}") == f"{decoded(local)[0]}***@{decoded(domain)}"


def test_text_without_an_address_is_left_as_it_is() -> None:
    for text in ("100% done", "GET /api/x?code=%2F", "@bp.function_name", "a\\u00e9b", "x &amp; y"):
        assert redact(text) == text.replace("code=%2F", "code=***")


def test_secrets_and_tokens_are_masked() -> None:
    text = "POST /oauth/token?client_id=x&client_secret=s3cr3t Authorization: Bearer abc.def"
    assert redact(text) == "POST /oauth/token?client_id=x&client_secret=*** Authorization: Bearer ***"


@contextmanager
def log_text() -> Iterator[io.StringIO]:
    """Everything logged, formatted by a plain handler on the root logger (as Azure's is)."""
    install_log_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@settings(max_examples=50)
@given(local=local_parts, domain=domains)
@example(local="0*", domain="0.example")
def test_every_logger_is_redacted_request_lines_and_exceptions_included(local: str, domain: str) -> None:
    """Issue 12, fault 5: exception messages echoing a refused value were logged unredacted."""
    with log_text() as text:
        _log_everywhere(f"{local}@{domain}")
    logged = text.getvalue()
    assert "Traceback" in logged
    assert "filterValues=" in logged
    assert not leaked(local, domain, logged), logged


def _log_everywhere(address: str) -> None:
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "x.mktorest.com",
        443,
        "GET",
        f"/rest/v1/leads.json?filterValues={quote(address, safe='')}",
        "HTTP/1.1",
        200,
        None,
    )
    logging.getLogger("some.library.nobody.configured").warning("found %r", {"email": address})
    try:
        raise ValueError(f"Invalid value '{address}'")
    except ValueError:
        logging.getLogger("shared.sync.worker").exception("batch failed")
