"""wastetrail_audit: the auditors' tool — replay and verify the event log, trace loads,
recompute balances, report indicators, export evidence. Commands: ``wastetrail_audit.cli.app``.
"""
