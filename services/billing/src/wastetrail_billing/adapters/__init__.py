"""Adapters of the billing service: the outside systems it talks to (VNPay, ...)."""
