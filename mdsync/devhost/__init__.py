"""The local Functions host (``mdsync devhost``): runs the functions of ``function_app.py``
with ``azure.functions`` objects, because Azure Functions Core Tools cannot be installed here."""

from mdsync.devhost.describe import FunctionRow, as_rich_table
from mdsync.devhost.discovery import FunctionSpec, discover, load_function_app
from mdsync.devhost.host import DevHost
from mdsync.devhost.hostconfig import HostConfig
from mdsync.devhost.settings import export_settings, read_local_settings

__all__ = [
    "DevHost",
    "FunctionRow",
    "FunctionSpec",
    "HostConfig",
    "as_rich_table",
    "discover",
    "export_settings",
    "load_function_app",
    "read_local_settings",
]
