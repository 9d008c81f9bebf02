"""Index functions with the Azure Functions Python worker's own code, as Azure does at start.

When the host starts, the Python worker imports ``function_app.py``, calls ``get_functions()``
and hands each function to its ``Registry.add_indexed_function``, which checks every binding
parameter's annotation (``typing.get_type_hints``): ``list[func.ServiceBusMessage]`` is refused
on Python 3.11+ ("invalid non-type annotation"), ``typing.List[...]`` is accepted. One refused
function and the host loads none. Comparing parameter names, as the local host's discovery
does, cannot see that; running the worker's code can.

The worker is the PyPI package ``azure-functions-runtime`` (the worker library behind the
Python 3.13+ proxy worker; the 3.11 worker runs the same ``functions.py`` checks and is not
published on PyPI). It is a development tool, never deployed. Its ``Registry`` takes the
host's protobuf module for the binding direction constants; only those integers are read while
indexing, so :data:`PROTOS` stands in for the generated module with the same values.

This module imports nothing from mdsync: ``tests/deploy/test_worker_indexing.py`` runs it as a
script inside an isolated environment that holds only ``requirements.txt`` and the worker::

    python worker_index.py <app directory>      # prints JSON, exits 1 if a function is refused
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

WORKER_PACKAGE = "azure_functions_runtime"

# The host's BindingInfo enums, as protobuf exposes them: Direction in=0 out=1 inout=2,
# DataType undefined=0 (azure-functions hands the worker these integers).
PROTOS = SimpleNamespace(BindingInfo=SimpleNamespace(in_=0, out=1, inout=2, undefined=0))


@dataclass(frozen=True)
class Indexed:
    """One function the worker accepted, with the raw bindings it would send the host."""

    name: str
    bindings: tuple[str, ...]


class WorkerRefused(Exception):
    """The worker refuses a function; the message is the worker's own."""


def worker_available() -> bool:
    """Whether the worker package can be imported here (the dev environment installs it)."""
    import importlib.util

    return importlib.util.find_spec(WORKER_PACKAGE) is not None


def index(functions: Sequence[Any]) -> list[Indexed]:
    """Run the worker's indexing checks on ``functions`` (``app.get_functions()``).

    Raises :class:`WorkerRefused` with the worker's message for the first refused function."""
    from azure_functions_runtime.bindings import meta
    from azure_functions_runtime.functions import FunctionLoadError, Registry
    from azure_functions_runtime.loader import get_fx_raw_bindings

    meta.load_binding_registry()
    registry = Registry()
    indexed = []
    for function in functions:
        try:
            info = registry.add_indexed_function(function=function, protos=PROTOS)
        except FunctionLoadError as exc:
            raise WorkerRefused(str(exc)) from None
        except Exception as exc:  # e.g. NameError from get_type_hints: the worker fails the same way
            name = function.get_function_name()
            raise WorkerRefused(f"cannot load the {name} function: {type(exc).__name__}: {exc}") from None
        raw, _ = get_fx_raw_bindings(indexed_function=function, function_info=info)
        indexed.append(Indexed(info.name, tuple(raw)))
    return indexed


def index_app_directory(directory: str) -> list[Indexed]:
    """What the worker does at start in ``directory``: import its script, index its functions."""
    from azure_functions_runtime.loader import index_function_app

    script = os.environ.get("PYTHON_SCRIPT_FILE_NAME") or "function_app.py"
    sys.path.insert(0, directory)
    return index(index_function_app(os.path.join(directory, script)))


def main(argv: Sequence[str]) -> int:
    try:
        found = index_app_directory(os.path.abspath(argv[0]))
    except WorkerRefused as exc:
        print(json.dumps({"refused": str(exc)}))
        return 1
    print(json.dumps({"indexed": [{"name": f.name, "bindings": list(f.bindings)} for f in found]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
