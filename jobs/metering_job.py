"""Thin entry point for a Flink cluster: `flink run -py jobs/metering_job.py --catalog catalog.yaml`.

The job graph comes from the builder tallyflow.stream.graph (kafka_job); locally, `tallyflow run` calls the
same builder and lands the output itself. On a cluster, run `tallyflow load` next to the job.
"""

from __future__ import annotations

import argparse
import sys

from tallyflow.billing import balance
from tallyflow.core import catalog
from tallyflow.errors import UserError
from tallyflow.land import clickhouse
from tallyflow.settings import Settings
from tallyflow.stream import environment, graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    parser.add_argument("--bounded", action="store_true", help="stop at the topic's end offsets")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        cat = catalog.load(args.catalog)
        # Every start continues each customer's balance and ledger entry numbers from ClickHouse
        # (a restored customer keeps its Flink state); never from full grants.
        seeds = None
        if graph.credit_meters(cat):
            # ready(): a first start on a fresh ClickHouse finds the tables the seeds are read from.
            seeds = balance.seeds_for_start(settings, clickhouse.ready(settings), cat)
    except UserError as e:
        print(f"metering_job: {e}", file=sys.stderr)
        return 1
    t_env = environment.create_environment()
    result = graph.kafka_job(
        t_env, settings, cat, environment.JobOptions(bounded=args.bounded, credit_seeds=seeds, on_cluster=True)
    ).execute()
    if args.bounded:
        # Submitting returns at once; a bounded job is waited for, so this process (and, run
        # locally, the MiniCluster inside it) ends when the job has read to the ends.
        result.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
