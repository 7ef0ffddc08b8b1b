"""The naive baseline of `propensity bench`: a Faust agent that does nothing per event.

Run as ``python -m streams.harness.naive_worker BOOTSTRAP TOPIC EVENTS PARTITIONS RESULT_FILE``.
When it has seen EVENTS events it writes the consumption window as JSON to RESULT_FILE; the caller
then stops it (Faust redirects stdout to its log, so a file is the reliable channel).
"""

import json
import sys
import time
from pathlib import Path

import faust


def main(bootstrap: str, topic_name: str, expected: int, partitions: int, result: Path) -> None:
    app = faust.App(
        f"naive-{topic_name}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(result.parent / "naive-data"),
        topic_partitions=partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
        broker_rebalance_timeout=3.0,
        broker_session_timeout=10.0,
    )
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, value_serializer="raw")
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            if seen["n"] == 0:
                seen["first"] = time.time()
            seen["n"] += 1
            if seen["n"] == expected:
                window = {"events": seen["n"], "first": seen["first"], "last": time.time()}
                result.write_text(json.dumps(window))

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
