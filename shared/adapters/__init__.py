"""Adapters behind the ports in :mod:`shared.ports`.

- ``sqlite_queue.SqliteQueue`` and ``sqlite_state.SqliteStateStore``: embedded, for the local
  host, the demo and tests. Several processes may share one file.
- ``servicebus_queue.ServiceBusQueue`` and ``table_state.TableStateStore``: production (Azure
  Service Bus, Azure Table Storage).

Nothing is imported here: each caller imports the one module it needs, so a function app that
uses SQLite never loads the Azure SDKs (import time is cold-start time).
"""
