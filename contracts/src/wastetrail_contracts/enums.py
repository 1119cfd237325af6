"""Closed vocabularies shared by every service (domain.md glossary)."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Sorting categories, Law on Environmental Protection 2020 Art. 75."""

    RECYCLABLE = "recyclable"
    FOOD = "food"
    OTHER = "other"
    HAZARDOUS = "hazardous"
    BULKY = "bulky"


class TreatmentMethod(StrEnum):
    """How a plant treated accepted waste."""

    RECYCLING = "recycling"
    COMPOSTING = "composting"
    ANAEROBIC_DIGESTION = "anaerobic_digestion"
    INCINERATION_ENERGY_RECOVERY = "incineration_energy_recovery"
    CO_PROCESSING = "co_processing"
    SANITARY_LANDFILL = "sanitary_landfill"
    DIRECT_LANDFILL = "direct_landfill"


class AcceptanceStatus(StrEnum):
    """A plant's decision on a received batch or trip."""

    ACCEPTED = "ACCEPTED"
    PARTIALLY_REFUSED = "PARTIALLY_REFUSED"
    REFUSED = "REFUSED"


class CommuneClass(StrEnum):
    """Urban wards versus rural communes; tariffs and targets differ."""

    URBAN = "urban"
    RURAL = "rural"


class CustomerClass(StrEnum):
    """Who pays: tariffs differ by customer class."""

    HOUSEHOLD = "household"
    INDIVIDUAL_BUSINESS = "individual_business"
    ORGANISATION = "organisation"


class GeneratorKind(StrEnum):
    """A waste generator is a household or an organisation."""

    HOUSEHOLD = "household"
    ORGANISATION = "organisation"


class RefusalReason(StrEnum):
    """Why a collector refused waste (Art. 77)."""

    UNSORTED = "unsorted"
    WRONG_PACKAGING = "wrong_packaging"
    HAZARDOUS_MIXED = "hazardous_mixed"


class Role(StrEnum):
    """Who acts: the role carried by a bearer token and by an event's actor."""

    COLLECTOR = "collector"
    STATION_OPERATOR = "station_operator"
    PLANT_OPERATOR = "plant_operator"
    HOUSEHOLD = "household"
    PRODUCER = "producer"
    CASHIER = "cashier"
    AUDITOR = "auditor"
    ADMIN = "admin"
    SYSTEM = "system"


class ActorKind(StrEnum):
    """What kind of actor caused an event."""

    DEVICE = "device"
    OPERATOR = "operator"
    SYSTEM = "system"


class AlertKind(StrEnum):
    """Custody gaps and anomalies that must be chased."""

    # Collected loads received at no station or plant in time: suspected illegal dumping
    # (điểm đen). Raised once per trip (the unit of custody), naming its loads and grams.
    LOAD_NOT_RECEIVED = "load_not_received"
    # Superseded by LOAD_NOT_RECEIVED (same gap, per trip); no longer raised, kept so logs
    # written before still decode.
    TRIP_NOT_WEIGHED = "trip_not_weighed"
    TRIP_WEIGHT_MISMATCH = "trip_weight_mismatch"
    BATCH_NOT_RECEIVED = "batch_not_received"
    RECEIPT_DISCREPANCY = "receipt_discrepancy"
    PLANT_OVER_CAPACITY = "plant_over_capacity"
    WASTE_HELD_AT_STATION = "waste_held_at_station"  # weighed in, not dispatched in time
    ACCEPTED_NOT_TREATED = "accepted_not_treated"  # accepted at a plant, no treatment record
    REFUSED_NOT_REDIRECTED = "refused_not_redirected"  # refused, not sent on or back


class Material(StrEnum):
    """Packaging materials in the deposit-refund scheme."""

    PET = "pet"
    ALUMINIUM = "aluminium"
    GLASS = "glass"
    PAPER_CARTON = "paper_carton"
    OTHER_PLASTIC = "other_plastic"


class CostComponent(StrEnum):
    """The three priced components of the service (plus overhead for cost reports)."""

    COLLECTION = "collection"
    TRANSPORT = "transport"
    TREATMENT = "treatment"
    OVERHEAD = "overhead"


class PaymentChannel(StrEnum):
    """How money arrived."""

    VNPAY = "vnpay"
    CASH = "cash"
    BANK_TRANSFER = "bank_transfer"


class ClaimRejection(StrEnum):
    """Why a deposit claim will not be paid."""

    MATERIAL_REFUSED = "material_refused"
    NOT_RECYCLED = "not_recycled"
    DUPLICATE_CLAIM = "duplicate_claim"
    OVER_MARKET = "over_market"
    OTHER = "other"


class CustodySite(StrEnum):
    """Where a weighing or a receipt happened."""

    STATION = "station"
    PLANT = "plant"
