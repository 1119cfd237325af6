"""``python -m wastetrail_billing.vnpay_sandbox``: serve the VNPay simulator with uvicorn."""

from __future__ import annotations

import argparse
import os

import uvicorn

from wastetrail_billing.vnpay_sandbox.app import create_app


def _delays(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m wastetrail_billing.vnpay_sandbox",
        description="Local VNPay 2.1.0 sandbox simulator (not VNPay).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8009)
    parser.add_argument("--tmn-code", required=True, help="the merchant's vnp_TmnCode")
    parser.add_argument(
        "--hash-secret",
        default=os.environ.get("VNPAY_SANDBOX_HASH_SECRET"),
        help="the merchant's hash secret (default: $VNPAY_SANDBOX_HASH_SECRET)",
    )
    parser.add_argument("--ipn-url", default=None, help="merchant IPN URL (none: no IPN)")
    parser.add_argument("--ipn-attempts", type=int, default=5)
    parser.add_argument(
        "--ipn-delays",
        type=_delays,
        default=(1.0, 2.0, 4.0, 8.0),
        help="comma-separated seconds between IPN attempts, last one repeats (default 1,2,4,8)",
    )
    parser.add_argument("--ipn-timeout", type=float, default=10.0)
    parser.add_argument("--min-amount-vnd", type=int, default=5_000)
    args = parser.parse_args(argv)
    if not args.hash_secret:
        parser.error("--hash-secret or $VNPAY_SANDBOX_HASH_SECRET is required")
    app = create_app(
        args.tmn_code,
        args.hash_secret,
        ipn_url=args.ipn_url,
        ipn_attempts=args.ipn_attempts,
        ipn_delays=args.ipn_delays,
        ipn_timeout=args.ipn_timeout,
        min_amount_vnd=args.min_amount_vnd,
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
