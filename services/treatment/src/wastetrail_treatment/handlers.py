"""Commands → domain rules → one unit of work (state changes and events together).

Each handler locks the row whose running totals it changes (the plant for its daily
capacity, the receipt for what was treated or redirected), so two concurrent requests
cannot both slip under a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from wastetrail_contracts import Actor, Event, uuid7
from wastetrail_contracts.enums import AlertKind, Category, CustodySite, TreatmentMethod
from wastetrail_contracts.events.custody import CustodyAlertRaised
from wastetrail_contracts.events.transfer import TripWeighed
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    PlantRegistered,
    RefusedWasteRedirected,
    TreatmentOutput,
    TreatmentRecorded,
)
from wastetrail_runtime import alarms
from wastetrail_runtime.problems import Problem, conflict, not_found
from wastetrail_runtime.store import UnitOfWork

from wastetrail_treatment.adapters.tables import (
    Alert,
    Allocation,
    Batch,
    Load,
    Plant,
    Receipt,
    Redirect,
    TreatmentRecord,
    Trip,
    Vehicle,
)
from wastetrail_treatment.commands import (
    ReceiveDelivery,
    RecordTreatment,
    RedirectRefused,
    RegisterPlant,
    UpdatePlant,
)
from wastetrail_treatment.domain.errors import RuleViolation
from wastetrail_treatment.domain.plant import PlantRules, over_capacity, plant_day
from wastetrail_treatment.domain.receipt import (
    ReceiptBalance,
    check_redirect,
    check_treatment,
    decide_acceptance,
    direct_haul_net,
    is_discrepant,
)

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """A fresh, time-ordered id for something the caller did not name."""
    return f"{prefix}-{uuid7()}"


async def commit(uow: UnitOfWork) -> None:
    """Commit; a row another request inserted meanwhile (same id) is a 409, not a 500."""
    try:
        await uow.commit()
    except IntegrityError as exc:
        raise conflict("recorded-concurrently",
                       "another request recorded the same id at the same moment; read it back "
                       "before retrying") from exc


def plant_rules(plant: Plant) -> PlantRules:
    """The domain's view of a plant row."""
    return PlantRules(plant.plant_id, frozenset(TreatmentMethod(m) for m in plant.methods),
                      frozenset(Category(c) for c in plant.categories),
                      plant.daily_capacity_grams)


def check_site(site: str | None, plant_id: str) -> None:
    """A plant operator acts only for the plant its token names (``site`` None: anyone)."""
    if site is not None and site != plant_id:
        raise Problem(403, "forbidden-plant", "Forbidden",
                      f"this token acts for plant {site!r}, not {plant_id!r}", field="plant_id")


# --- plants ---------------------------------------------------------------------------


def _unique(items: tuple[T, ...]) -> list[T]:
    return list(dict.fromkeys(items))


async def register_plant(uow: UnitOfWork, cmd: RegisterPlant, actor: Actor,
                         now: datetime) -> Plant:
    """Register a new plant → PlantRegistered."""
    if await uow.session.get(Plant, cmd.plant_id) is not None:
        raise conflict("plant-exists", f"plant {cmd.plant_id!r} is already registered",
                       field="plant_id")
    plant = Plant(plant_id=cmd.plant_id, name=cmd.name, commune=cmd.commune,
                  methods=[m.value for m in _unique(cmd.methods)],
                  categories=[c.value for c in _unique(cmd.categories)],
                  daily_capacity_grams=cmd.daily_capacity_grams,
                  registered_at=now, updated_at=now)
    uow.session.add(plant)
    await uow.record(plant.plant_id, [_plant_registered(plant)], actor=actor,
                     expected_version=0)
    return plant


async def update_plant(uow: UnitOfWork, plant_id: str, cmd: UpdatePlant, actor: Actor,
                       now: datetime) -> Plant:
    """Change a plant's permit or capacity → PlantRegistered with the new details."""
    plant = await uow.session.get(Plant, plant_id, with_for_update=True)
    if plant is None:
        raise not_found("plant", plant_id, field="plant_id")
    plant.name, plant.commune = cmd.name, cmd.commune
    plant.methods = [m.value for m in _unique(cmd.methods)]
    plant.categories = [c.value for c in _unique(cmd.categories)]
    plant.daily_capacity_grams = cmd.daily_capacity_grams
    plant.updated_at = now
    uow.session.add(plant)
    await uow.record(plant.plant_id, [_plant_registered(plant)], actor=actor)
    return plant


def _plant_registered(plant: Plant) -> PlantRegistered:
    return PlantRegistered(
        plant_id=plant.plant_id, name=plant.name, commune=plant.commune,
        methods=tuple(TreatmentMethod(m) for m in plant.methods),
        categories=tuple(Category(c) for c in plant.categories),
        daily_capacity_grams=plant.daily_capacity_grams,
    )


# --- receipts -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Delivery:
    """What arrived, resolved from the batch, the trip or the redirect it refers to."""

    batch_id: str | None
    trip_id: str | None
    category: Category
    declared_grams: int
    received_grams: int
    redirect: Redirect | None = None
    weighing: TripWeighed | None = None


async def receive(uow: UnitOfWork, plant_id: str, cmd: ReceiveDelivery, actor: Actor,
                  now: datetime, *, tolerance_percent: int) -> Receipt:
    """Weighbridge receipt → BatchReceived (+ TripWeighed for direct haul, + alerts)."""
    plant = await uow.session.get(Plant, plant_id, with_for_update=True)
    if plant is None:
        raise not_found("plant", plant_id, field="plant_id")
    rules = plant_rules(plant)
    receipt_id = cmd.receipt_id or new_id("rcpt")
    if await uow.session.get(Receipt, receipt_id) is not None:
        raise conflict("receipt-exists", f"receipt {receipt_id!r} is already recorded",
                       field="receipt_id")
    delivery = await _resolve_delivery(uow, plant_id, cmd, now)
    if cmd.category is not None and cmd.category is not delivery.category:
        raise RuleViolation("category-mismatch", "category",
                            f"the delivery was dispatched as {delivery.category.value}")
    acceptance = decide_acceptance(
        received_grams=delivery.received_grams, status=cmd.status,
        refused_grams=cmd.refused_grams, refusal_reason=cmd.refusal_reason,
        category=delivery.category, plant=rules,
    )
    discrepant = is_discrepant(delivery.declared_grams, delivery.received_grams,
                               tolerance_percent)
    day = plant_day(now)
    before = await _received_on(uow, plant_id, day)
    over = over_capacity(before, delivery.received_grams, rules.daily_capacity_grams)

    receipt = Receipt(
        receipt_id=receipt_id, plant_id=plant_id, batch_id=delivery.batch_id,
        trip_id=delivery.trip_id,
        redirect_id=delivery.redirect.redirect_id if delivery.redirect else None,
        source_receipt_id=delivery.redirect.receipt_id if delivery.redirect else None,
        category=delivery.category.value, declared_grams=delivery.declared_grams,
        received_grams=acceptance.received_grams, accepted_grams=acceptance.accepted_grams,
        refused_grams=acceptance.refused_grams, status=acceptance.status.value,
        refusal_reason=acceptance.refusal_reason, received_at=now, plant_day=day,
        discrepancy=discrepant, over_capacity=over, actor=actor.id,
        gross_grams=delivery.weighing.gross_grams if delivery.weighing else None,
        tare_grams=delivery.weighing.tare_grams if delivery.weighing else None,
        tare_source=delivery.weighing.tare_source if delivery.weighing else None,
    )
    uow.session.add(receipt)
    if delivery.redirect is not None:
        delivery.redirect.received_receipt_id = receipt_id
        uow.session.add(delivery.redirect)

    events: list[Event] = [BatchReceived(
        receipt_id=receipt_id, plant_id=plant_id, batch_id=delivery.batch_id,
        trip_id=delivery.trip_id, category=delivery.category,
        declared_grams=delivery.declared_grams, received_grams=acceptance.received_grams,
        accepted_grams=acceptance.accepted_grams, refused_grams=acceptance.refused_grams,
        status=acceptance.status, refusal_reason=acceptance.refusal_reason,
        received_at=now, over_capacity=over,
        redirect_id=delivery.redirect.redirect_id if delivery.redirect else None,
        discrepancy_threshold_percent=tolerance_percent,
    )]
    events += _alerts(receipt, plant, delivery.declared_grams, before, tolerance_percent)
    uow.session.add_all(_listed(events, plant_id))
    if delivery.weighing is not None:
        await uow.record(delivery.weighing.trip_id, [delivery.weighing], actor=actor)
    await uow.record(receipt_id, events, actor=actor, expected_version=0)
    return receipt


def _alerts(receipt: Receipt, plant: Plant, declared: int, before: int,
            tolerance_percent: int) -> list[Event]:
    """The warnings a receipt raises; neither rejects it."""
    alerts: list[Event] = []
    if receipt.discrepancy:
        alerts.append(CustodyAlertRaised(
            alert_id=f"{receipt.receipt_id}.discrepancy", kind=AlertKind.RECEIPT_DISCREPANCY,
            subject_kind="receipt", subject_id=receipt.receipt_id,
            detail=(f"measured {receipt.received_grams} g against {declared} g declared: "
                    f"more than {tolerance_percent} % apart"),
            expected_grams=declared, observed_grams=receipt.received_grams,
            raised_at=receipt.received_at,
        ))
    if receipt.over_capacity:
        day_total = before + receipt.received_grams
        alerts.append(CustodyAlertRaised(
            alert_id=f"{receipt.receipt_id}.over-capacity", kind=AlertKind.PLANT_OVER_CAPACITY,
            subject_kind="plant", subject_id=plant.plant_id,
            detail=(f"plant {plant.plant_id} received {day_total} g on {receipt.plant_day}, "
                    f"above its daily capacity of {plant.daily_capacity_grams} g; receipt "
                    f"{receipt.receipt_id} accepted and flagged"),
            expected_grams=plant.daily_capacity_grams, observed_grams=day_total,
            raised_at=receipt.received_at, commune=plant.commune,
        ))
    return alerts


def _listed(events: list[Event], plant_id: str) -> list[Alert]:
    """Rows for the receipt's warnings, so GET /v1/alerts lists them with the alarms.

    They stay open until someone clears them: a discrepancy or an overload is a fact to
    investigate, not a gap a later event closes.
    """
    return [Alert(alert_id=e.alert_id, kind=e.kind.value, subject_kind=e.subject_kind,
                  subject_id=e.subject_id, detail=e.detail, expected_grams=e.expected_grams,
                  observed_grams=e.observed_grams, raised_at=e.raised_at, plant_id=plant_id)
            for e in events if isinstance(e, CustodyAlertRaised)]


async def _received_on(uow: UnitOfWork, plant_id: str, day: date) -> int:
    total = (await uow.session.exec(
        select(func.coalesce(func.sum(col(Receipt.received_grams)), 0))
        .where(col(Receipt.plant_id) == plant_id, col(Receipt.plant_day) == day)
    )).first()
    return int(total or 0)


async def _resolve_delivery(uow: UnitOfWork, plant_id: str, cmd: ReceiveDelivery,
                            now: datetime) -> _Delivery:
    subjects = [n for n in ("batch_id", "trip_id", "redirect_id") if getattr(cmd, n)]
    if len(subjects) != 1:
        raise RuleViolation("delivery-subject", "batch_id",
                            "give exactly one of batch_id, trip_id or redirect_id")
    if cmd.trip_id is not None:
        return await _direct_haul(uow, plant_id, cmd, cmd.trip_id, now)
    if cmd.measured_grams is None:
        raise RuleViolation("measured-weight-missing", "measured_grams",
                            "give the net weighbridge weight of the delivery")
    if cmd.gross_grams is not None or cmd.tare_grams is not None:
        raise RuleViolation("gross-tare-only-for-trips", "gross_grams",
                            "gross_grams/tare_grams are for a direct-haul trip only")
    if cmd.batch_id is not None:
        return await _batch_delivery(uow, plant_id, cmd.batch_id, cmd.measured_grams)
    assert cmd.redirect_id is not None
    return await _redirect_delivery(uow, plant_id, cmd.redirect_id, cmd.measured_grams)


async def _batch_delivery(uow: UnitOfWork, plant_id: str, batch_id: str,
                          measured: int) -> _Delivery:
    batch = await uow.session.get(Batch, batch_id)
    if batch is None or batch.plant_id is None or batch.dispatched_grams is None:
        raise RuleViolation(
            "batch-not-dispatched", "batch_id",
            f"no dispatch of batch {batch_id!r} is known here (yet): it must be dispatched "
            "by its station first",
        )
    if batch.plant_id != plant_id:
        raise RuleViolation("batch-for-other-plant", "batch_id",
                            f"batch {batch_id!r} was dispatched to plant {batch.plant_id!r}")
    first = (await uow.session.exec(
        select(col(Receipt.receipt_id)).where(col(Receipt.batch_id) == batch_id,
                                         col(Receipt.redirect_id).is_(None))
    )).first()
    if first is not None:
        raise conflict("batch-already-received",
                       f"batch {batch_id!r} was already received as {first!r}", field="batch_id")
    return _Delivery(batch_id, None, Category(batch.category), batch.dispatched_grams, measured)


async def _redirect_delivery(uow: UnitOfWork, plant_id: str, redirect_id: str,
                             measured: int) -> _Delivery:
    redirect = await uow.session.get(Redirect, redirect_id, with_for_update=True)
    if redirect is None or redirect.destination_kind != "plant":
        raise RuleViolation("unknown-redirect", "redirect_id",
                            f"no refused waste was redirected to a plant as {redirect_id!r}")
    if redirect.destination_id != plant_id:
        raise RuleViolation("redirect-for-other-plant", "redirect_id",
                            f"redirect {redirect_id!r} goes to plant {redirect.destination_id!r}")
    if redirect.received_receipt_id is not None:
        raise conflict("redirect-already-received",
                       f"redirect {redirect_id!r} was already received as "
                       f"{redirect.received_receipt_id!r}", field="redirect_id")
    source = await uow.session.get(Receipt, redirect.receipt_id)
    assert source is not None  # a redirect always hangs off a receipt
    return _Delivery(source.batch_id, source.trip_id, Category(source.category), redirect.grams,
                     measured, redirect=redirect)


async def _direct_haul(uow: UnitOfWork, plant_id: str, cmd: ReceiveDelivery, trip_id: str,
                       now: datetime) -> _Delivery:
    if cmd.measured_grams is not None:
        raise RuleViolation("direct-haul-weighing", "measured_grams",
                            "a direct-haul trip is weighed here: give gross_grams (and "
                            "tare_grams when the vehicle is weighed out)")
    if cmd.gross_grams is None:
        raise RuleViolation("direct-haul-weighing", "gross_grams",
                            "give the vehicle's gross weight on the weighbridge")
    trip = await uow.session.get(Trip, trip_id, with_for_update=True)
    if trip is None or trip.vehicle_id is None:
        raise RuleViolation("unknown-trip", "trip_id",
                            f"trip {trip_id!r} is not known here (yet): no TripStarted seen")
    if trip.weighed_site == CustodySite.STATION.value:
        raise conflict("trip-went-through-station",
                       f"trip {trip_id!r} was weighed at station {trip.weighed_site_id!r}; "
                       "receive the batch it was consolidated into", field="trip_id")
    allocated = (await uow.session.exec(
        select(col(Allocation.batch_id)).where(col(Allocation.trip_id) == trip_id)
    )).first()
    if allocated is not None:
        raise conflict("trip-went-through-station",
                       f"trip {trip_id!r} was consolidated into batch {allocated!r}",
                       field="trip_id")
    if trip.weighed_site == CustodySite.PLANT.value:
        raise conflict("trip-already-received",
                       f"trip {trip_id!r} was already weighed at plant {trip.weighed_site_id!r}",
                       field="trip_id")
    tare, tare_source = cmd.tare_grams, "weighed"
    if tare is None:
        vehicle = await uow.session.get(Vehicle, trip.vehicle_id)
        if vehicle is None:
            raise RuleViolation("tare-unknown", "tare_grams",
                                f"vehicle {trip.vehicle_id!r} has no registered tare known "
                                "here; weigh it out and give tare_grams")
        tare, tare_source = vehicle.registered_tare_grams, "registered"
    net = direct_haul_net(cmd.gross_grams, tare)
    weighing = TripWeighed(
        trip_id=trip_id, vehicle_id=trip.vehicle_id, site=CustodySite.PLANT, site_id=plant_id,
        gross_grams=cmd.gross_grams, tare_grams=tare, net_grams=net,
        tare_source="weighed" if tare_source == "weighed" else "registered",
        weighed_in_at=now, weighed_out_at=now if tare_source == "weighed" else None,
    )
    trip.weighed_site, trip.weighed_site_id = CustodySite.PLANT.value, plant_id
    trip.net_grams, trip.weighed_at = net, now
    uow.session.add(trip)

    loads = (await uow.session.exec(
        select(col(Load.category), col(Load.grams)).where(col(Load.trip_id) == trip_id)
    )).all()
    categories = {Category(c) for c, _ in loads}
    category = cmd.category or (categories.pop() if len(categories) == 1 else None)
    if category is None:
        raise RuleViolation("category-missing", "category",
                            f"trip {trip_id!r} carries {len(categories)} categories as scanned; "
                            "say which category crossed the weighbridge")
    # What the crew declared when closing the trip; failing that, what it scanned.
    declared = (trip.declared_total_grams or trip.scanned_total_grams
                or sum(int(g) for _, g in loads))
    return _Delivery(None, trip_id, category, declared, net, weighing=weighing)


# --- custody of the refused part and treatment ----------------------------------------


def receipt_balance(receipt: Receipt) -> ReceiptBalance:
    """The domain's view of what is left to account for on a receipt row."""
    return ReceiptBalance(receipt.receipt_id, receipt.plant_id, Category(receipt.category),
                          receipt.accepted_grams, receipt.refused_grams, receipt.treated_grams,
                          receipt.redirected_grams)


async def settle_alarms(uow: UnitOfWork, receipt: Receipt, why: str, now: datetime) -> None:
    """Clear the receipt's open alarms whose waiting grams are now all accounted for."""
    balance = receipt_balance(receipt)
    if receipt.untreated_alert_id is not None and balance.untreated_grams == 0:
        await alarms.clear_alert(uow, Alert, receipt.untreated_alert_id, why, now)
    if receipt.refused_alert_id is not None and balance.held_refused_grams == 0:
        await alarms.clear_alert(uow, Alert, receipt.refused_alert_id, why, now)


async def _locked_receipt(uow: UnitOfWork, receipt_id: str, site: str | None) -> Receipt:
    receipt = await uow.session.get(Receipt, receipt_id, with_for_update=True)
    if receipt is None:
        raise not_found("receipt", receipt_id, field="receipt_id")
    check_site(site, receipt.plant_id)
    return receipt


async def redirect_refused(uow: UnitOfWork, receipt_id: str, cmd: RedirectRefused,
                           actor: Actor, now: datetime, *, site: str | None) -> Redirect:
    """Send refused waste back to a station or to another plant → RefusedWasteRedirected."""
    receipt = await _locked_receipt(uow, receipt_id, site)
    balance = receipt_balance(receipt)
    destination_id = cmd.destination_id
    destination: PlantRules | None = None
    if cmd.destination_kind == "station" and destination_id is None:
        batch = await uow.session.get(Batch, receipt.batch_id) if receipt.batch_id else None
        if batch is None:
            raise RuleViolation("destination-missing", "destination_id",
                                "say which station takes the refused waste back")
        destination_id = batch.station_id
    if cmd.destination_kind == "plant":
        if destination_id is None:
            raise RuleViolation("destination-missing", "destination_id",
                                "say which plant takes the refused waste")
        other = await uow.session.get(Plant, destination_id)
        destination = plant_rules(other) if other is not None else None
    assert destination_id is not None
    grams = cmd.grams if cmd.grams is not None else balance.held_refused_grams
    check_redirect(balance, grams, cmd.destination_kind, destination)
    redirect_id = cmd.redirect_id or new_id("rdr")
    if await uow.session.get(Redirect, redirect_id) is not None:
        raise conflict("redirect-exists", f"redirect {redirect_id!r} is already recorded",
                       field="redirect_id")
    redirect = Redirect(redirect_id=redirect_id, receipt_id=receipt_id,
                        plant_id=receipt.plant_id, grams=grams,
                        destination_kind=cmd.destination_kind, destination_id=destination_id,
                        redirected_at=now, actor=actor.id)
    receipt.redirected_grams += grams
    uow.session.add_all([redirect, receipt])
    await uow.record(receipt_id, [RefusedWasteRedirected(
        receipt_id=receipt_id, plant_id=receipt.plant_id, batch_id=receipt.batch_id,
        trip_id=receipt.trip_id, grams=grams, destination_kind=cmd.destination_kind,
        destination_id=destination_id, redirected_at=now, redirect_id=redirect_id,
    )], actor=actor)
    where = "returned to station" if cmd.destination_kind == "station" else "sent to plant"
    await settle_alarms(uow, receipt, f"{grams} g {where} {destination_id} (redirect "
                        f"{redirect_id}); {receipt.redirected_grams} g of "
                        f"{receipt.refused_grams} g refused now redirected", now)
    return redirect


async def record_treatment(uow: UnitOfWork, receipt_id: str, cmd: RecordTreatment,
                           actor: Actor, now: datetime, *, site: str | None) -> TreatmentRecord:
    """Record how accepted waste was treated → TreatmentRecorded (never beyond accepted)."""
    receipt = await _locked_receipt(uow, receipt_id, site)
    plant = await uow.session.get(Plant, receipt.plant_id)
    assert plant is not None  # receipts are only recorded at registered plants
    treated = check_treatment(receipt_balance(receipt), plant_rules(plant), cmd.methods,
                              output_grams=sum(o.grams for o in cmd.outputs),
                              residue_grams=cmd.residue_grams,
                              residue_destination=cmd.residue_destination,
                              energy_kwh=cmd.energy_kwh)
    treatment_id = cmd.treatment_id or new_id("trt")
    if await uow.session.get(TreatmentRecord, treatment_id) is not None:
        raise conflict("treatment-exists", f"treatment {treatment_id!r} is already recorded",
                       field="treatment_id")
    # Methods in the enum's order, so records and events read the same way everywhere.
    methods = {m: cmd.methods[m] for m in TreatmentMethod if m in cmd.methods}
    record = TreatmentRecord(
        treatment_id=treatment_id, receipt_id=receipt_id, plant_id=receipt.plant_id,
        methods={m.value: g for m, g in methods.items()},
        outputs=[{"kind": o.kind, "grams": o.grams} for o in cmd.outputs],
        energy_kwh=cmd.energy_kwh, residue_grams=cmd.residue_grams,
        residue_destination=cmd.residue_destination.strip(), treated_grams=treated,
        previously_treated_grams=receipt.treated_grams, treated_at=now, actor=actor.id,
    )
    event = TreatmentRecorded(
        treatment_id=treatment_id, plant_id=receipt.plant_id, receipt_id=receipt_id,
        batch_id=receipt.batch_id, trip_id=receipt.trip_id,
        accepted_grams=receipt.accepted_grams, previously_treated_grams=receipt.treated_grams,
        methods=methods, outputs=tuple(TreatmentOutput(kind=o.kind, grams=o.grams)
                                       for o in cmd.outputs),
        energy_kwh=cmd.energy_kwh, residue_grams=cmd.residue_grams,
        residue_destination=record.residue_destination, treated_at=now,
    )
    receipt.treated_grams += treated
    uow.session.add_all([record, receipt])
    await uow.record(receipt_id, [event], actor=actor)
    await settle_alarms(uow, receipt, f"treatment {treatment_id} covered the accepted "
                        f"{receipt.accepted_grams} g", now)
    return record
