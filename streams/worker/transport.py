"""A Faust transport whose consumer hands input records to streams in per-partition bundles.

Faust's per-message path (Message -> Event -> channel -> stream -> ack, with sensors and an
event-loop yield per message) caps a do-nothing agent at a few thousand events per second.
This consumer wraps each fetched run of consecutive records of one input partition in a single
Faust message whose value is a ``RecordBundle``, so that path is paid once per bundle. Offsets
stay exact: acking a bundle acks every offset it holds, so Faust commits past a bundle only
once the agent has finished it (at-least-once delivery is unchanged).

Changelog partitions are bundled too: table recovery then pays Faust's per-message path once
per bundle (streams.worker.tables.BundledTable applies a bundle's records to the store), which took
recovery of 200,000 user states from about a minute to seconds.

Registered as the Faust transport ``propensity://`` (entry point ``faust.transports``).
"""

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import ack_lock

log = logging.getLogger(__name__)

# How long the changelog end check may fetch before it trusts the broker's figure.
END_CHECK_SECONDS = 5.0


class RecordBundle(tuple[Any, ...]):
    """Consecutive aiokafka ConsumerRecords of one topic-partition, oldest first."""

    __slots__ = ()

    @property
    def first_offset(self) -> int:
        return int(self[0].offset)

    @property
    def last_offset(self) -> int:
        return int(self[-1].offset)


class _BundleRecord:
    """Looks like an aiokafka ConsumerRecord to Faust; carries the bundle as its value."""

    __slots__ = (
        "checksum",
        "headers",
        "key",
        "offset",
        "partition",
        "serialized_key_size",
        "serialized_value_size",
        "timestamp",
        "timestamp_type",
        "topic",
        "value",
    )

    def __init__(self, bundle: RecordBundle) -> None:
        last = bundle[-1]
        self.topic = last.topic
        self.partition = last.partition
        self.offset = last.offset
        self.timestamp = last.timestamp
        self.timestamp_type = last.timestamp_type
        self.headers: list[tuple[str, bytes]] = []
        self.key = None
        self.value = bundle
        self.checksum = None
        self.serialized_key_size = -1
        self.serialized_value_size = sum(max(r.serialized_value_size, 0) for r in bundle)


class BundlingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with a configurable fetch wait.

    Faust hard-codes fetch_max_wait_ms=1500. Apache Kafka answers a fetch as soon as data is
    there, but the embedded Tansu broker holds it for the wait, which showed as ~400 ms of
    end-to-end latency at 200 events/s. 10 ms bounds that wait; on Kafka it only sets how
    often an idle consumer polls.
    """

    fetch_max_wait_ms = 10
    # Check the end offsets of changelog partitions by fetching (see _highwaters); set from
    # Settings.verify_changelog_end by streams.worker.app.create_app.
    verify_changelog_end = True

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by aiokafka at start()
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """End offsets, those of changelog partitions confirmed by a fetch.

        Table recovery reads a changelog up to this end. Some brokers under-report it in
        ListOffsets (the embedded Tansu answers the last produce batch's base offset + 1), so
        recovery would stop short and restore states older than what was written. The fetch
        response's high-water mark is right on both, so for each changelog partition we
        fetch from the reported end - 1 and take the larger figure. On Apache Kafka the two
        agree and this costs one fetch per changelog partition at recovery.
        """
        reported = dict(await super()._highwaters(partitions))
        changelogs = self.app.tables.changelog_topics
        suspect = {tp: end for tp, end in reported.items() if tp.topic in changelogs and end > 0}
        if not suspect or not self.verify_changelog_end:
            return reported
        for tp, end in (await self._fetched_ends(suspect)).items():
            if end > reported[tp]:
                log.info(
                    "changelog %s ends at %d, not %d as the broker reported", tp, end, reported[tp]
                )
                reported[tp] = end
        return reported

    async def _fetched_ends(self, ends: Mapping[TP, int]) -> dict[TP, int]:
        """The high-water marks that fetch responses report, from each end - 1."""
        conf = self.app.conf
        consumer = AIOKafkaConsumer(
            bootstrap_servers=faust_aiokafka.server_list(
                self.transport.url, faust_aiokafka.Transport.default_port
            ),
            client_id=f"{conf.broker_client_id}-end-check",
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            **faust_aiokafka.credentials_to_aiokafka_auth(
                conf.broker_credentials, conf.ssl_context
            ),
        )
        await consumer.start()
        try:
            tps = {KafkaTP(tp.topic, tp.partition): tp for tp in ends}
            consumer.assign(list(tps))
            for ktp, tp in tps.items():
                consumer.seek(ktp, ends[tp] - 1)
            found: dict[TP, int] = {}
            deadline = time.monotonic() + END_CHECK_SECONDS
            while len(found) < len(tps) and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=100)
                for ktp, tp in tps.items():
                    highwater = consumer.highwater(ktp)
                    if highwater is not None:
                        found[tp] = highwater
                        consumer.pause(ktp)
            return found
        finally:
            await consumer.stop()


class HeldBack:
    """First offsets of input fetched while the app was rebalancing, per partition.

    Faust ends a rebalance (tables.recovery: ``on_recovery_completed``, ``_resume_streams``)
    by resuming the input partitions, seeking them to their committed offsets, then resuming
    flow control, which clears every stream's queue. Input fetched in between reaches the
    agent's queue and is dropped there unacked, while the consumer's position has moved past
    it; a later run fetched before the seek but queued after the clear was then scored ahead
    of it, and once the seek re-read the dropped records, the users' states (applied offsets
    past them) took them for redeliveries: no propensity, and later scores from a state
    lacking them. So no input passes to streams during a rebalance; once it is over, each
    held partition is sought back to where the held input began (or its committed offset, if
    lower) before any of its records pass.
    """

    def __init__(self) -> None:
        self._first: dict[TP, int] = {}

    def __bool__(self) -> bool:
        return bool(self._first)

    def hold(self, tp: TP, first_offset: int) -> None:
        self._first[tp] = min(self._first.get(tp, first_offset), first_offset)

    def release(self, committed: Mapping[TP, int | None]) -> dict[TP, int]:
        """Where each held partition must be read again from; forgets them all."""
        rewind: dict[TP, int] = {}
        for tp, first in self._first.items():
            offset = committed.get(tp)
            rewind[tp] = first if offset is None else min(first, offset)
        self._first.clear()
        return rewind


class BundlingConsumer(faust_aiokafka.Consumer):
    """aiokafka-backed Faust consumer that hands each fetched run of a partition as a bundle."""

    _held: HeldBack | None = None

    def _new_consumer_thread(self) -> BundlingConsumerThread:
        return BundlingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Mapping[TP, list[Any]]:
        records = dict(await super()._getmany(active_partitions, timeout))
        if self._held is None:
            self._held = HeldBack()
        held = self._held
        if self.app.rebalancing:
            for tp, batch in list(records.items()):
                if batch and not self._is_changelog_tp(tp):
                    held.hold(tp, batch[0].offset)  # re-read once the rebalance is over
                    del records[tp]
        elif held:
            assigned = self.assignment()
            for tp, offset in held.release(self._committed_offset).items():
                records.pop(tp, None)  # fetched from past the held input: read again
                if tp in assigned:
                    log.info("re-reading %s from %d: input fetched while rebalancing", tp, offset)
                    await self.seek(tp, offset)
        bundled: dict[TP, list[Any]] = {}
        for tp, batch in records.items():
            if not batch:
                bundled[tp] = batch
                continue
            bundle = RecordBundle(batch)
            bundled[tp] = [_BundleRecord(bundle)]
            # Faust's drain loop treats a jump in offsets as a gap of missing records; the
            # bundle's records are not missing, so its read position moves to the bundle's end.
            self._read_offset[tp] = bundle.last_offset
        return bundled

    def ack(self, message: Message) -> bool:
        """Ack a bundle as every one of its records (an ordinary message as itself)."""
        bundle = message.value
        with ack_lock:
            acked = bool(super().ack(message))
            if acked and isinstance(bundle, RecordBundle):
                app = self.app
                if (
                    message.generation_id != app.consumer_generation_id
                    or not app.flow_control.is_active()
                ):
                    log.warning(
                        "acking a bundle the stream may have skipped: %s %d-%d (generation %s, "
                        "now %s, flow %s, committed %s)",
                        message.tp,
                        bundle.first_offset,
                        bundle.last_offset,
                        message.generation_id,
                        app.consumer_generation_id,
                        app.flow_control.is_active(),
                        self._committed_offset[message.tp],
                    )
                tp = message.tp
                committed = self._committed_offset[tp]
                index = self._acked_index[tp]
                acked_for_tp = self._acked[tp]
                for offset in range(bundle.first_offset, bundle.last_offset):
                    if (committed is None or offset >= committed) and offset not in index:
                        index.add(offset)
                        acked_for_tp.append(offset)
            return acked

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        committed = await super()._commit_offsets(offsets, start_new_transaction)
        inputs = {tp: o for tp, o in offsets.items() if not self._is_changelog_tp(tp)}
        # A commit every commit interval: DEBUG, or the log is mostly commits. A failed one is
        # worth a line at any level.
        level = logging.DEBUG if committed else logging.WARNING
        if inputs and log.isEnabledFor(level):
            log.log(
                level,
                "commit %s: %s",
                "done" if committed else "not done",
                ", ".join(f"{tp.topic}:{tp.partition}@{o}" for tp, o in sorted(inputs.items())),
            )
        return bool(committed)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        log.info(
            "seek to committed: %s",
            ", ".join(
                f"{tp.topic}:{tp.partition}@{o}"
                for tp, o in sorted(self._committed_offset.items())
                if not self._is_changelog_tp(tp)
            ),
        )


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with the bundling consumer."""

    Consumer = BundlingConsumer
