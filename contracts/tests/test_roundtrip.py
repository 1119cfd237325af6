"""Every registered event survives payload → envelope → bytes → envelope → payload unchanged.

Strategies are derived from the pydantic models themselves (types, bounds, patterns, enums),
then each model with cross-field invariants gets a small "repair" that makes the drawn
values consistent (net = gross − tare, received = accepted + refused, ...). A model that
gains an invariant without a repair here makes this test fail loudly.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo
from wastetrail_contracts import (
    ALL_EVENTS,
    Actor,
    ChainVerifier,
    ChainWriter,
    Event,
    decode,
    encode,
    envelope_hash,
    parse_payload,
)
from wastetrail_contracts.base import MAX_DONG, MAX_GRAMS
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    ActorKind,
    CostComponent,
    CustomerClass,
    GeneratorKind,
    PaymentChannel,
    Role,
    TreatmentMethod,
)
from wastetrail_contracts.events import billing, collection, custody, epr, transfer, treatment
from wastetrail_contracts.events.custody import ALERT_SUBJECTS, WEIGHT_ALERTS
from wastetrail_contracts.events.treatment import ENERGY_METHODS

Kwargs = dict[str, Any]
UTF8_CHARS = st.characters(codec="utf-8")


# -- strategies from the models ----------------------------------------------------------


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """Constraints of stacked metadata; when several apply, the tightest wins."""
    out: dict[str, Any] = {}

    def lower(key: str, value: Any) -> None:
        out[key] = max(out.get(key, value), value)

    def upper(key: str, value: Any) -> None:
        out[key] = min(out.get(key, value), value)

    for item in metadata:
        if isinstance(item, FieldInfo):
            for key, value in _bounds(item.metadata).items():
                if key == "pattern":
                    out["pattern"] = value
                elif key in ("min", "min_len"):
                    lower(key, value)
                else:
                    upper(key, value)
        elif isinstance(item, annotated_types.Ge):
            lower("min", item.ge)
        elif isinstance(item, annotated_types.Gt):
            lower("min", item.gt + 1 if isinstance(item.gt, int) else item.gt)
        elif isinstance(item, annotated_types.Le):
            upper("max", item.le)
        elif isinstance(item, annotated_types.Lt):
            upper("max", item.lt - 1)
        elif isinstance(item, annotated_types.MinLen):
            lower("min_len", item.min_length)
        elif isinstance(item, annotated_types.MaxLen):
            upper("max_len", item.max_length)
        elif isinstance(item, StringConstraints):
            if item.pattern is not None:
                out["pattern"] = item.pattern
            if item.min_length is not None:
                lower("min_len", item.min_length)
            if item.max_length is not None:
                upper("max_len", item.max_length)
    return out


def strategy_for(tp: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    """A strategy for one annotated type, honouring its constraints."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return strategy_for(args[0], [*args[1:], *metadata])
    if origin in (Union, types.UnionType):
        options = [strategy_for(a, metadata) for a in args if a is not type(None)]
        strategy = st.one_of(options)
        return st.none() | strategy if type(None) in args else strategy
    if origin is Literal:
        return st.sampled_from(args)
    bounds = _bounds(metadata)
    if origin is tuple:
        return st.lists(
            strategy_for(args[0], []),
            min_size=bounds.get("min_len", 0),
            max_size=min(bounds.get("max_len", 4), 4),
        ).map(tuple)
    if origin is dict:
        return st.dictionaries(
            strategy_for(args[0], []),
            strategy_for(args[1], []),
            min_size=bounds.get("min_len", 0),
            max_size=4,
        )
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model_strategy(tp)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(bounds.get("min", -(2**53)), bounds.get("max", 2**53))
    if tp is float:
        return st.floats(
            bounds.get("min"), bounds.get("max"), allow_nan=False, allow_infinity=False
        )
    if tp is datetime:
        return st.datetimes(
            datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)
        )
    if tp is date:
        return st.dates(date(2000, 1, 1), date(2100, 1, 1))
    if tp is str:
        min_len, max_len = bounds.get("min_len", 0), bounds.get("max_len")
        if "pattern" in bounds:
            strategy = st.from_regex(bounds["pattern"], fullmatch=True, alphabet=UTF8_CHARS)
            if max_len is None:
                return strategy
            return strategy.filter(lambda s: min_len <= len(s) <= max_len)
        return st.text(UTF8_CHARS, min_size=min_len, max_size=min(max_len or 40, 40))
    raise TypeError(f"no strategy for {tp!r}")


def field_strategies(model: type[BaseModel]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        name: strategy_for(info.annotation, list(info.metadata))
        for name, info in model.model_fields.items()
    }


def model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(field_strategies(model)).map(lambda kw: model(**kw))


# -- repairs: make drawn values satisfy each model's cross-field invariants ---------------


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def _one_subject(kw: Kwargs) -> None:
    if kw["batch_id"] is None and kw["trip_id"] is None:
        kw["batch_id"] = "batch-1"
    elif kw["batch_id"] is not None and kw["trip_id"] is not None:
        kw["trip_id"] = None


def _generator(kw: Kwargs) -> None:
    if kw["kind"] is GeneratorKind.ORGANISATION and kw["customer_class"] is CustomerClass.HOUSEHOLD:
        kw["customer_class"] = CustomerClass.ORGANISATION
    if kw["kind"] is GeneratorKind.HOUSEHOLD and kw["customer_class"] is CustomerClass.ORGANISATION:
        kw["customer_class"] = CustomerClass.HOUSEHOLD
    kw["tag_ids"] = _unique(kw["tag_ids"])


def _vehicle(kw: Kwargs) -> None:
    kw["registered_tare_grams"] = min(kw["registered_tare_grams"], MAX_GRAMS - 1)
    kw["capacity_grams"] = min(kw["capacity_grams"], MAX_GRAMS - kw["registered_tare_grams"])


def _load(kw: Kwargs) -> None:
    if kw["measure"] == "bag" and kw["bag_size"] is None:
        kw["bag_size"] = "L"
    if kw["measure"] == "volume" and kw["litres"] is None:
        kw["litres"] = 60
    if (kw["latitude"] is None) != (kw["longitude"] is None):
        kw["latitude"] = kw["longitude"] = None


def _trip_closed(kw: Kwargs) -> None:
    kw["load_count"] = min(kw["load_count"], kw["scanned_total_grams"])
    if kw["load_count"] == 0:
        kw["scanned_total_grams"] = 0


def _trip_weighed(kw: Kwargs) -> None:
    kw["tare_grams"] = min(kw["tare_grams"], kw["gross_grams"])
    kw["net_grams"] = kw["gross_grams"] - kw["tare_grams"]
    if kw["weighed_out_at"] is not None and kw["weighed_out_at"] < kw["weighed_in_at"]:
        kw["weighed_out_at"] = kw["weighed_in_at"]
    if kw["tare_source"] == "weighed" and kw["weighed_out_at"] is None:
        kw["weighed_out_at"] = kw["weighed_in_at"]


def _trip_reconciled(kw: Kwargs) -> None:
    kw["load_count"] = min(kw["load_count"], kw["scanned_grams"])
    kw["difference_grams"] = kw["net_grams"] - kw["scanned_grams"]
    kw["discrepancy"] = abs(kw["difference_grams"]) > kw["tolerance_grams"]


def _batch_consolidated(kw: Kwargs) -> None:
    shares = {a.trip_id: min(a.grams, MAX_GRAMS // 5) for a in kw["allocations"]}
    kw["allocations"] = tuple(
        transfer.Allocation(trip_id=trip, grams=grams) for trip, grams in shares.items()
    )
    kw["total_grams"] = sum(shares.values())


def _batch_received(kw: Kwargs) -> None:
    _one_subject(kw)
    received = kw["received_grams"]
    if kw["status"] is AcceptanceStatus.ACCEPTED:
        refused = 0
    elif kw["status"] is AcceptanceStatus.REFUSED:
        refused = received
    else:
        received = kw["received_grams"] = max(received, 2)
        refused = 1 + kw["refused_grams"] % (received - 1)
    kw["refused_grams"], kw["accepted_grams"] = refused, received - refused
    if refused and not kw["refusal_reason"]:
        kw["refusal_reason"] = "contaminated"


def _redirected(kw: Kwargs) -> None:
    _one_subject(kw)
    if kw["destination_kind"] == "plant" and kw["destination_id"] == kw["plant_id"]:
        kw["destination_kind"] = "station"


def _treatment(kw: Kwargs) -> None:
    if kw["batch_id"] is not None and kw["trip_id"] is not None:
        kw["trip_id"] = None
    methods = {m: min(g, MAX_GRAMS // 8) for m, g in kw["methods"].items()}
    if sum(methods.values()) == 0:
        methods[next(iter(methods))] = 1
    kw["methods"] = methods
    treated = sum(methods.values())
    kw["previously_treated_grams"] = min(kw["previously_treated_grams"], MAX_GRAMS // 8)
    kw["accepted_grams"] = max(kw["accepted_grams"], kw["previously_treated_grams"] + treated)
    if sum(o.grams for o in kw["outputs"]) + kw["residue_grams"] > treated:
        kw["outputs"] = ()
        kw["residue_grams"] = min(kw["residue_grams"], treated)
    if kw["residue_grams"] and not kw["residue_destination"]:
        kw["residue_destination"] = "landfill"
    if not ENERGY_METHODS.intersection(m for m, g in methods.items() if g > 0):
        kw["energy_kwh"] = 0


def _alert(kw: Kwargs) -> None:
    kw["subject_kind"] = sorted(ALERT_SUBJECTS[kw["kind"]])[0]
    if "expected_grams" in kw and kw["kind"] in WEIGHT_ALERTS:
        kw["expected_grams"] = kw["expected_grams"] or 0
        kw["observed_grams"] = kw["observed_grams"] or 0


def _tariff(kw: Kwargs) -> None:
    kw["document_sha256"] = hashlib.sha256(kw["document_json"].encode()).hexdigest()
    kw["effective_from"] = tuple(sorted(set(kw["effective_from"])))


def _invoice(kw: Kwargs) -> None:
    kw["lines"] = tuple(
        line.model_copy(update={"amount": line.amount % (MAX_DONG // 10)}) for line in kw["lines"]
    )
    kw["subtotal"] = sum(line.amount for line in kw["lines"])
    kw["vat"] %= MAX_DONG // 10
    kw["credits"] = min(kw["credits"], kw["subtotal"] + kw["vat"])
    kw["total"] = kw["subtotal"] + kw["vat"] - kw["credits"]


def _payment_succeeded(kw: Kwargs) -> None:
    if kw["channel"] is PaymentChannel.VNPAY and kw["gateway_transaction_no"] is None:
        kw["gateway_transaction_no"] = "14226112"


def _operating_cost(kw: Kwargs) -> None:
    component = kw["component"]
    if component is CostComponent.TREATMENT:
        kw["driver"] = "plant_tonne"
        kw["method"] = kw["method"] or TreatmentMethod.RECYCLING
    else:
        kw["method"] = None
        if component is CostComponent.OVERHEAD:
            kw["driver"] = "overhead"
        elif kw["driver"] not in ("trip_km", "station_tonne"):
            kw["driver"] = "trip_km"


def _ledger(kw: Kwargs) -> None:
    legs = [p.amount % (MAX_DONG // 10) or 1 for p in kw["postings"][:-1]]
    debits = zip(kw["postings"], legs, strict=False)
    kw["postings"] = (
        *(billing.Posting(account=p.account, amount=a) for p, a in debits),
        billing.Posting(account=kw["postings"][-1].account, amount=-sum(legs)),
    )


def _rate(total_field: str) -> Callable[[Kwargs], None]:
    def repair(kw: Kwargs) -> None:
        if kw["deposit_per_unit"] is not None:
            kw["deposit_per_unit"] = min(kw["deposit_per_unit"], MAX_DONG // kw["units"])
            kw[total_field] = kw["units"] * kw["deposit_per_unit"]

    return repair


REPAIRS: dict[type[Event], Callable[[Kwargs], None]] = {
    collection.GeneratorRegistered: _generator,
    collection.VehicleRegistered: _vehicle,
    collection.TripStarted: lambda kw: kw.update(crew=_unique(kw["crew"])),
    collection.LoadCollected: _load,
    collection.TripClosed: _trip_closed,
    transfer.StationRegistered: lambda kw: kw.update(categories=_unique(kw["categories"])),
    transfer.TripWeighed: _trip_weighed,
    transfer.TripReconciled: _trip_reconciled,
    transfer.BatchConsolidated: _batch_consolidated,
    treatment.PlantRegistered: lambda kw: kw.update(
        methods=_unique(kw["methods"]), categories=_unique(kw["categories"])
    ),
    treatment.BatchReceived: _batch_received,
    treatment.RefusedWasteRedirected: _redirected,
    treatment.TreatmentRecorded: _treatment,
    custody.CustodyAlertRaised: _alert,
    custody.CustodyAlertCleared: _alert,
    billing.TariffPublished: _tariff,
    billing.InvoiceIssued: _invoice,
    billing.PaymentSucceeded: _payment_succeeded,
    billing.OperatingCostRecorded: _operating_cost,
    billing.LedgerEntryPosted: _ledger,
    epr.UnitsPlacedOnMarket: _rate("deposit_owed"),
    epr.DepositClaimOpened: _rate("amount"),
}


def event_strategy(cls: type[Event]) -> st.SearchStrategy[Event]:
    repair = REPAIRS.get(cls, lambda kw: None)

    def build(kw: Kwargs) -> Event:
        kw = dict(kw)
        repair(kw)
        return cls(**kw)

    return st.fixed_dictionaries(field_strategies(cls)).map(build)


ACTORS = st.builds(
    Actor,
    kind=st.just(ActorKind.DEVICE),
    id=st.from_regex(r"dev-[0-9]{1,6}", fullmatch=True),
    role=st.sampled_from([Role.COLLECTOR, Role.STATION_OPERATOR, Role.PLANT_OPERATOR]),
)


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda cls: cls.event_type)
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_every_event_round_trips_through_the_wire(cls: type[Event], data: st.DataObject) -> None:
    event = data.draw(event_strategy(cls), label="event")
    actor = data.draw(ACTORS, label="actor")
    when = data.draw(
        st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC))
    )
    writer = ChainWriter("transfer", "wastetrail.transfer.events", 1)
    envelope = writer.append(
        event,
        stream_id="stream-1",
        stream_version=1,
        actor=actor,
        occurred_at=when,
        recorded_at=when,
        correlation_id="corr-1",
    )

    wire = encode(envelope)
    back = decode(wire)

    assert back == envelope
    assert encode(back) == wire  # decoding and re-encoding is byte-stable
    assert parse_payload(back) == event
    assert type(parse_payload(back)) is cls
    # What an auditor hashes from the raw bytes is the hash the writer sealed.
    assert envelope_hash(json.loads(wire)) == envelope.hash
    if cls.event_type != "integrity.chain_checkpoint":  # random signatures cannot verify
        assert ChainVerifier({}).check(json.loads(wire)) == []
