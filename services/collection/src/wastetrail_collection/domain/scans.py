"""Load scans and refusals: every validation rule of a scan, as pure functions.

A scan is checked in the order a collector can fix things: the trip, then whose waste it
is, then the measure, then the time, then the position. The first broken rule is reported,
with the field to correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError
from wastetrail_contracts.enums import Category, RefusalReason
from wastetrail_contracts.events.collection import LoadCollected, LoadRefused

from wastetrail_collection.domain.ids import load_id_for, refusal_id_for
from wastetrail_collection.domain.rules import (
    DeviceFacts,
    GeneratorFacts,
    Rejection,
    ScanPolicy,
    TripFacts,
)

Measure = Literal["scale", "bag", "volume"]
MAX_LITRES = 100_000


@dataclass(frozen=True)
class ScanInput:
    """One load scan as the device sent it (types already checked at the edge)."""

    idempotency_key: str
    trip_id: str
    category: Category
    measure: Measure
    collected_at: datetime
    tag_id: str | None = None
    generator_code: str | None = None
    grams: int | None = None
    litres: int | None = None
    bag_size: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class RefusalInput:
    """One refusal as the device sent it (types already checked at the edge)."""

    idempotency_key: str
    reason: RefusalReason
    refused_at: datetime
    trip_id: str | None = None
    tag_id: str | None = None
    generator_code: str | None = None
    category: Category | None = None
    note: str = ""
    photo_sha256: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def check_whose(
    tag_id: str | None, generator_code: str | None, generator: GeneratorFacts | None
) -> Rejection | None:
    """The scanned tag (or typed generator code) must name a known, active generator."""
    if tag_id is None and generator_code is None:
        return Rejection("generator-missing", "tag_id", "give the QR tag_id or the generator_code")
    if tag_id is not None and generator_code is not None:
        return Rejection("generator-ambiguous", "generator_code",
                         "give the QR tag_id or the generator_code, not both")
    field = "tag_id" if tag_id is not None else "generator_code"
    if generator is None:
        if tag_id is not None:
            return Rejection("unknown-tag", field, f"no generator carries the tag {tag_id!r}")
        return Rejection("unknown-generator", field,
                         f"no generator has the code {generator_code!r}")
    if not generator.active:
        return Rejection("inactive-generator", field,
                         f"generator {generator.generator_id} is inactive; its waste is not "
                         "collected under this code")
    return None


def check_trip(trip_id: str, trip: TripFacts | None, device: DeviceFacts) -> Rejection | None:
    """The trip must exist, be open, and run on the vehicle this device is bound to."""
    if trip is None:
        return Rejection("unknown-trip", "trip_id", f"no trip {trip_id!r}")
    if device.vehicle_id != trip.vehicle_id:
        return Rejection("trip-of-another-vehicle", "trip_id",
                         f"trip {trip_id} runs on vehicle {trip.vehicle_id}, but device "
                         f"{device.device_id} is bound to {device.vehicle_id or 'no vehicle'}")
    if not trip.is_open:
        return Rejection("trip-closed", "trip_id", f"trip {trip_id} is closed")
    return None


def check_time(
    when: datetime, field: str, now: datetime, policy: ScanPolicy, trip: TripFacts | None
) -> Rejection | None:
    """A scan time must carry a zone, not lie in the future, and not precede its trip."""
    if when.tzinfo is None or when.utcoffset() is None:
        return Rejection("time-without-zone", field, "give the time with its UTC offset")
    if when > now + policy.clock_skew:
        return Rejection("time-in-future", field,
                         f"{when.isoformat()} is in the future (server time {now.isoformat()})")
    if trip is not None and when < trip.started_at:
        return Rejection("time-before-trip-start", field,
                         f"{when.isoformat()} is before trip {trip.trip_id} started "
                         f"({trip.started_at.isoformat()})")
    return None


def resolve_grams(scan: ScanInput, policy: ScanPolicy, capacity_grams: int) -> int | Rejection:
    """The load's grams: weighed, or estimated from the bag size or litres; within capacity."""
    grams = scan.grams
    if scan.measure == "bag":
        if scan.bag_size is None:
            return Rejection("bag-size-missing", "bag_size", "measure 'bag' needs a bag_size")
        if grams is None:
            grams = policy.bag_grams.get(scan.bag_size)
            if grams is None:
                return Rejection("unknown-bag-size", "bag_size",
                                 f"bag size {scan.bag_size!r} has no configured weight; "
                                 "send grams")
    elif scan.measure == "volume":
        if scan.litres is None:
            return Rejection("litres-missing", "litres", "measure 'volume' needs litres")
        if not 0 < scan.litres <= MAX_LITRES:
            return Rejection("litres-out-of-range", "litres",
                             f"litres must be between 1 and {MAX_LITRES}")
        if grams is None and policy.grams_per_litre > 0:
            grams = scan.litres * policy.grams_per_litre
    if grams is None:
        return Rejection("weight-missing", "grams", f"measure {scan.measure!r} needs grams")
    if grams <= 0:
        return Rejection("weight-not-positive", "grams", f"weight must be above 0 g, got {grams}")
    if grams > capacity_grams:
        return Rejection("weight-above-capacity", "grams",
                         f"{grams} g is more than the vehicle's capacity of {capacity_grams} g")
    return grams


def decide_load(
    scan: ScanInput,
    *,
    load_id: str | None = None,
    device: DeviceFacts,
    trip: TripFacts | None,
    generator: GeneratorFacts | None,
    now: datetime,
    policy: ScanPolicy,
) -> LoadCollected | Rejection:
    """Accept a scan as a ``LoadCollected`` event, or say which rule it breaks.

    ``load_id`` is ``load_id_for(device, key)``; a caller that already computed it (to look
    for duplicates) passes it in.
    """
    rejection = check_trip(scan.trip_id, trip, device) or check_whose(
        scan.tag_id, scan.generator_code, generator
    )
    if rejection is not None:
        return rejection
    # Both are known here: check_trip and check_whose reject a missing trip or generator.
    assert trip is not None
    assert generator is not None
    grams = resolve_grams(scan, policy, trip.capacity_grams)
    if isinstance(grams, Rejection):
        return grams
    rejection = check_time(scan.collected_at, "collected_at", now, policy, trip) or (
        policy.bounds.check(scan.latitude, scan.longitude)
    )
    if rejection is not None:
        return rejection
    try:
        return LoadCollected(
            load_id=load_id or load_id_for(device.device_id, scan.idempotency_key),
            trip_id=trip.trip_id,
            generator_id=generator.generator_id,
            tag_id=scan.tag_id,
            commune=generator.commune,
            category=scan.category,
            measure=scan.measure,
            grams=grams,
            litres=scan.litres,
            bag_size=scan.bag_size,
            collected_at=scan.collected_at.astimezone(UTC),
            latitude=scan.latitude,
            longitude=scan.longitude,
            device_id=device.device_id,
            vehicle_id=trip.vehicle_id,
            idempotency_key=scan.idempotency_key,
        )
    except ValidationError as exc:  # a value the contract refuses that no rule above caught
        return rejection_from(exc)


def decide_refusal(
    refusal: RefusalInput,
    *,
    device: DeviceFacts,
    trip: TripFacts | None,
    generator: GeneratorFacts | None,
    now: datetime,
    policy: ScanPolicy,
) -> LoadRefused | Rejection:
    """Record a refusal as a ``LoadRefused`` event, or say which rule it breaks.

    A trip is optional (a refusal may be noted at a collection point outside a run), but a
    named trip must be this device's open trip, as for a load.
    """
    if refusal.trip_id is not None:
        rejection = check_trip(refusal.trip_id, trip, device)
        if rejection is not None:
            return rejection
    rejection = check_whose(refusal.tag_id, refusal.generator_code, generator)
    if rejection is not None:
        return rejection
    assert generator is not None
    rejection = check_time(
        refusal.refused_at, "refused_at", now, policy, trip if refusal.trip_id else None
    ) or policy.bounds.check(refusal.latitude, refusal.longitude)
    if rejection is not None:
        return rejection
    try:
        return LoadRefused(
            refusal_id=refusal_id_for(device.device_id, refusal.idempotency_key),
            trip_id=refusal.trip_id,
            generator_id=generator.generator_id,
            commune=generator.commune,
            reason=refusal.reason,
            category=refusal.category,
            note=refusal.note,
            photo_sha256=refusal.photo_sha256,
            refused_at=refusal.refused_at.astimezone(UTC),
            device_id=device.device_id,
            idempotency_key=refusal.idempotency_key,
        )
    except ValidationError as exc:
        return rejection_from(exc)


def rejection_from(exc: ValidationError) -> Rejection:
    """The first error of a pydantic validation as a rejection naming the field."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "scan"
    return Rejection("invalid", field, f"{field}: {first['msg']}")
