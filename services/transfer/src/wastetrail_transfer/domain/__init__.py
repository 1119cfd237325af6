"""Pure rules of a transfer station: no I/O, no clock (times are passed in), no database.

- `errors`: the rule violations, each naming the offending field.
- `weighing`: gross − tare → net, and which tare counts.
- `reconciliation`: net weight against the sum of the scanned loads, with a tolerance.
- a trip's net weight split by category: `wastetrail_contracts.apportion.category_shares`.
- `batch`: the container aggregate — one category, allocations with a running total
  per trip, seal, dispatch to a plant that accepts the category.
- `alarms`: when a trip or a batch is overdue.
"""
