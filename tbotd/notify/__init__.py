"""Notifications (README: Notifications): what an operator must know, sent through apprise.

``classify`` (events → notices), ``policy`` (de-duplication, cool-downs, filters, hourly
budgets), ``render``, ``summary``, ``lifecycle`` and ``enrich`` are pure or read-only; ``queue``
is the bounded severity queue; ``targets`` is the apprise adapter; ``service`` runs it all off
the cycle. Importing this package is cheap: apprise loads only when a target is configured.
"""
