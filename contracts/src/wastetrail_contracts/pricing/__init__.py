"""Tariffs and fee arithmetic, shared by billing (which issues invoices) and the audit
(which recomputes them from the log): a ``billing.tariff_published`` event carries the
tariff document, ``tariff.load_tariff`` / ``publishing.tariff_from_json`` read it, and
``fees.compute_invoice`` prices an account's month of loads with it. Pure: no I/O."""
