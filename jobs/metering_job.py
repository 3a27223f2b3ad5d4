"""Thin entry point for a Flink cluster: `flink run -py jobs/metering_job.py --catalog catalog.yaml`.

The job graph comes from the pure builder tallyflow.job.build; locally, `tallyflow run` calls the
same builder and lands the output itself. On a cluster, run `tallyflow load` next to the job.
"""

from __future__ import annotations

import argparse
import sys

from tallyflow import catalog, job
from tallyflow.errors import UserError
from tallyflow.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", required=True, help="catalog file (YAML or JSON)")
    parser.add_argument("--bounded", action="store_true", help="stop at the topic's end offsets")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        cat = catalog.load(args.catalog)
    except UserError as e:
        print(f"metering_job: {e}", file=sys.stderr)
        return 1
    t_env = job.create_environment()
    job.build(t_env, settings, cat, job.JobOptions(bounded=args.bounded)).execute()
    return 0


if __name__ == "__main__":
    sys.exit(main())
