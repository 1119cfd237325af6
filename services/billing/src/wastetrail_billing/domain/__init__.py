"""Pure fee arithmetic of the billing service: no I/O, no clock, no database.

- `tariff`: tariffs as versioned data (one document per province), the TOML loader,
  and the Art. 79 rule that decides which category a load is charged as.
- `fees`: `compute_invoice` — one account, one month, one tariff → one invoice in
  whole đồng, with the single rounding rule and the mid-month proration rule.
- `full_cost`: *tính đúng, tính đủ* — the real operating cost per component, the
  cost-recovery ratio and the tariff that would recover the full cost.
- `ledger`: double-entry values (Posting, JournalEntry) and the chart of accounts.
- `periods`: billing months on the Vietnamese calendar, deterministic invoice ids.
- `invoicing`: a computed invoice → its event lines and journal entries.
- `publishing`: a tariff document's canonical JSON and digest, and the rule that
  versions which already priced invoices cannot be rewritten.
"""
