"""The EPR deposit-refund scheme, run inside the billing service and sharing its ledger.

Producers and importers register packaging (SKU, material, unit grams, deposit per
unit, effective dates) and report units placed on a province's market; the deposits
those units carry are owed to the scheme and paid into its escrow (a bank transfer
recorded by a cashier — VNPay is not offered to producers). A collector records
packaging a household returns at a load; that opens a pending claim, which becomes
payable only when the chain's own events show the load's trip went into a batch that a
plant received and recycled (``domain.decide_claim``). A payable claim is credited to
the household's account, which its next invoice consumes.

Chart of accounts (sign convention: +debit / −credit; natural side as in
``wastetrail_billing.domain.ledger``):

====================================  ======  ==============================================
account                               side    balance means
====================================  ======  ==============================================
``producer:{id}:receivable``          debit   deposits reported, not yet paid (owed − paid)
``producer:{id}:deposits``            credit  deposits on that producer's packaging not yet
                                              refunded (owed − refunded = *unredeemed*)
``epr:escrow``                        debit   money in the scheme's escrow (paid − refunded);
                                              NEVER negative
``cash:epr_refunds``                  debit   money the escrow transferred to the operator to
                                              cover households' refund credits
``household:{account}:credit``        credit  refunds waiting for the next invoice (billing's)
====================================  ======  ==============================================

Entries (one per fact, each balanced; entry id → memo):

- units placed on the market, report R (``epr-mkt-R``):
  Dr ``producer:P:receivable`` / Cr ``producer:P:deposits``  units × deposit per unit
- deposit paid, payment D (``epr-dep-D``):
  Dr ``epr:escrow`` / Cr ``producer:P:receivable``  amount
- claim C credited (``epr-ref-C``), four legs:
  Dr ``producer:P:deposits``, Cr ``household:H:credit`` (the deposit is redeemed for the
  household) and Dr ``cash:epr_refunds``, Cr ``epr:escrow`` (the escrow pays for it),
  each confirmed units × deposit per unit. The escrow leg is posted with
  ``non_negative={epr:escrow}``; a confirmed claim the escrow cannot cover keeps status
  ``confirmed`` and is credited, first confirmed first, when the next deposit arrives.
- the household's next invoice (billing's): Dr ``household:H:credit`` / Cr receivable.

Per producer: owed = Σ reports, paid = Σ deposits, refunded = Σ credited claims,
unredeemed = owed − refunded. The escrow is one pooled account for the scheme.

Decisions worth knowing (details in ``domain``): partial recycling is settled by mass
balance; one claim per (load, SKU) and one set of claims per idempotency key; a claim
beyond the units placed on the province's market is flagged, not refused (the packaging
was really recycled — the producer's report is what the auditor should look at).
"""

from wastetrail_billing.epr.consumers import register_handlers
from wastetrail_billing.epr.http import make_epr_router
from wastetrail_billing.epr.queries import producer_balances

__all__ = ["make_epr_router", "producer_balances", "register_handlers"]
