"""Signed checkpoints: every N events or T seconds, sign each chain's head."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from wastetrail_contracts.envelope import SYSTEM_ACTOR
from wastetrail_contracts.events.integrity import ChainCheckpoint
from wastetrail_contracts.integrity import sign_checkpoint

from wastetrail_runtime.integrity import HeadWitness
from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.store import EventStore

log = get_logger(__name__)


class Checkpointer:
    """Appends a signed ``ChainCheckpoint`` as the next event of each chain that grew."""

    def __init__(
        self,
        store: EventStore,
        key: Ed25519PrivateKey,
        key_id: str,
        *,
        every_events: int = 1000,
        every_seconds: float = 10.0,
        witness: HeadWitness | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.key_id = key_id
        self.every_events = every_events
        self.every = timedelta(seconds=every_seconds)
        self.signed = 0
        # The heads this service's consumers verified: each checkpoint carries them, signed.
        self.witness = witness or HeadWitness()

    async def run(self) -> None:
        """Check the chains about once a second, forever."""
        while True:
            await asyncio.sleep(min(1.0, self.every.total_seconds()))
            try:
                await self.checkpoint_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("checkpoint.failed", error=str(exc))

    async def checkpoint_due(self, *, force: bool = False) -> int:
        """Sign every chain whose head moved enough (or at all, with ``force``)."""
        t = self.store.tables.chain_heads
        now = self.store.clock.now()
        async with self.store.db.session() as session:
            heads = (await session.execute(
                select(t.c.chain_id, t.c.partition, t.c.seq, t.c.checkpoint_seq, t.c.checkpoint_at)
            )).all()
        signed = 0
        for head in heads:
            grown = head.seq - head.checkpoint_seq
            if grown <= 0:
                continue
            last = head.checkpoint_at
            if last is not None and last.tzinfo is None:
                from datetime import UTC

                last = last.replace(tzinfo=UTC)
            due = force or grown >= self.every_events or last is None or now - last >= self.every
            if due:
                await self._sign(head.chain_id, head.partition)
                signed += 1
        self.signed += signed
        return signed

    async def _sign(self, chain: str, partition: int) -> None:
        t = self.store.tables.chain_heads
        async with self.store.unit_of_work() as uow:
            row = (await uow.session.execute(
                select(t.c.seq, t.c.hash).where(t.c.chain_id == chain).with_for_update()
            )).one()
            witnessed = self.witness.heads()
            event = ChainCheckpoint(
                chain_id=chain, chain_seq=int(row.seq), head_hash=str(row.hash),
                key_id=self.key_id,
                signature=sign_checkpoint(self.key, chain, int(row.seq), str(row.hash),
                                          [w.model_dump() for w in witnessed]),
                signed_at=self.store.clock.now(),
                witnessed=witnessed,
            )
            await uow.record_in_partition(
                f"checkpoint-{self.store.service}-{partition}", partition, [event],
                actor=SYSTEM_ACTOR,
            )
            await uow.session.execute(
                update(t).where(t.c.chain_id == chain)
                .values(checkpoint_seq=int(row.seq) + 1, checkpoint_at=self.store.clock.now())
            )
            await uow.commit()
