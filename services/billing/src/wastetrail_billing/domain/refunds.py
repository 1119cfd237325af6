"""Did a VNPay refund whose answer never came happen? (pure)

A refund request that timed out may have been applied by VNPay. Before asking again the
merchant asks VNPay's querydr about the payment and compares its answer with what its own
records already explain. One VNPay refund per payment is in flight at a time (the handler
refuses a second while one is pending), so at most one refund is unexplained.

What querydr says about a refunded payment (vnpay.md §2–3): ``vnp_TransactionType`` 02
(full refund) or 03 (partial), ``vnp_TransactionStatus`` 05 (refund processing) or 06
(sent to the bank), 09 refund rejected; for a refund the sandbox reports in
``vnp_Amount`` the total refunded (*unconfirmed* for VNPay itself: its documents do not say
which amount a refunded payment's querydr carries; when the total does not match either
reading the answer is ``UNCLEAR`` and a person reconciles).
"""

from __future__ import annotations

from enum import StrEnum

REFUND_TYPES = frozenset({"02", "03"})
REFUND_DONE = frozenset({"05", "06"})  # processing, or sent to the bank: money is going back
REFUND_REJECTED = "09"


class RefundOutcome(StrEnum):
    """What querydr proves about the unexplained refund."""

    APPLIED = "applied"  # VNPay refunded it: record it, never ask again
    NOT_APPLIED = "not_applied"  # VNPay has no trace of it: asking again is safe
    REJECTED = "rejected"  # VNPay refused it
    UNCLEAR = "unclear"  # the answer fits neither: keep it pending, a person looks


def refund_outcome(*, amount: int, refunded_before: int, transaction_type: str,
                   transaction_status: str, gateway_amount: int | None) -> RefundOutcome:
    """Decide from a querydr answer whether a pending refund of ``amount`` đồng happened.

    ``refunded_before`` is what this merchant already recorded as refunded on the payment
    (refunds that succeeded before the pending one). A payment VNPay shows as simply paid
    (type 01 or none, status 00) has had no refund. A refunded one (type 02/03, status
    05/06) carries the refunded total: that total with the pending refund means it was
    applied, without it means it was not.
    """
    if transaction_type in REFUND_TYPES:
        if transaction_status == REFUND_REJECTED:
            return RefundOutcome.REJECTED
        if transaction_status in REFUND_DONE and gateway_amount is not None:
            if gateway_amount == refunded_before + amount:
                return RefundOutcome.APPLIED
            if gateway_amount == refunded_before:
                return RefundOutcome.NOT_APPLIED
        return RefundOutcome.UNCLEAR
    if transaction_status == "00" and refunded_before == 0:
        return RefundOutcome.NOT_APPLIED
    return RefundOutcome.UNCLEAR
