"""Billing handlers: events and commands → domain → unit of work.

- ``projections``: what billing learns from the chain (accounts, charges, refusals,
  treated mass);
- ``tariffs``, ``invoicing``, ``payments``, ``costs``: the commands of the HTTP API;
- ``views``: read models for the API, the household page and the audit endpoint.
"""

from wastetrail_billing.handlers.projections import (
    change_account_status,
    open_account,
    record_charge,
    record_refusal,
    record_treatment,
)

__all__ = [
    "change_account_status",
    "open_account",
    "record_charge",
    "record_refusal",
    "record_treatment",
]
