"""Tests of the queue and state adapters (contract suites, Azurite, Service Bus edge)."""
