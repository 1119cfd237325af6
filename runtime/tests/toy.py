"""A toy service used by the runtime's own tests: one table, one endpoint, one consumer."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlmodel import Field, SQLModel, select
from wastetrail_contracts.enums import CommuneClass, CustomerClass, GeneratorKind, Role
from wastetrail_contracts.events.collection import GeneratorRegistered
from wastetrail_runtime import (
    Consumer,
    Principal,
    Problem,
    ServiceMetadata,
    ServiceRuntime,
    ServiceSpec,
    require,
    runtime_of,
)

meta = ServiceMetadata()


class ToyTable(SQLModel, registry=meta.registry):
    pass


class Seen(ToyTable, table=True):
    generator_id: str = Field(primary_key=True)
    times: int = 0


router = APIRouter()


class RegisterBody(BaseModel):
    generator_id: str
    expected_version: int | None = None


@router.post("/v1/generators", status_code=201)
async def register(
    body: RegisterBody, request: Request, principal: Principal = Depends(require(Role.ADMIN))
) -> dict[str, object]:
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        await uow.record(
            body.generator_id,
            [generator(body.generator_id)],
            actor=principal.actor(),
            expected_version=body.expected_version,
        )
        envelopes = await uow.commit()
    return {"event_id": envelopes[0].event_id}


@router.get("/v1/seen/{generator_id}")
async def seen(
    generator_id: str, request: Request,
    _p: Principal = Depends(require(Role.AUDITOR)),
) -> dict[str, int]:
    rt = runtime_of(request)
    async with rt.db.session() as session:
        row = (await session.exec(select(Seen).where(Seen.generator_id == generator_id))).first()
    if row is None:
        raise Problem(404, "not-found", "Not found", f"no generator {generator_id}")
    return {"times": row.times}


def generator(generator_id: str, name: str = "Nguyễn Văn A") -> GeneratorRegistered:
    return GeneratorRegistered(
        generator_id=generator_id, code=generator_id, kind=GeneratorKind.HOUSEHOLD, name=name,
        commune="P01", commune_class=CommuneClass.URBAN, customer_class=CustomerClass.HOUSEHOLD,
    )


class Poison(Exception):
    pass


def make_consumers(rt: ServiceRuntime) -> list[Consumer]:
    consumer = Consumer(name="toy.collection", source="collection")

    @consumer.on(GeneratorRegistered)
    async def on_generator(event: GeneratorRegistered, envelope: object, uow: object) -> None:
        from wastetrail_runtime.store import UnitOfWork

        assert isinstance(uow, UnitOfWork)
        if event.name == "POISON" and not rt.settings.model_extra:
            raise Poison("this generator name is not accepted")
        row = await uow.session.get(Seen, event.generator_id)
        if row is None:
            row = Seen(generator_id=event.generator_id, times=0)
        row.times += 1
        uow.session.add(row)

    return [consumer]


SPEC = ServiceSpec(
    name="collection", meta=meta, migrations=Path(__file__).parent / "no-migrations",
    routers=[router], consumers=make_consumers, create_all=True,
)
