"""``python -m sapien.beat``: Celery beat started without Celery's command line.

``celery beat`` imports every subcommand before it runs one, as ``celery worker`` does (``sapien.worker``):
about 8 MB more in the one process that only keeps time. This runs the same ``Beat`` with the options
``sapien.processes.beat`` gives.
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapien.beat", description="Run Sapien's Celery beat (one only).")
    parser.add_argument("-s", "--schedule", default="celerybeat-schedule", help="beat's state file")
    parser.add_argument("-l", "--loglevel", default="WARNING", help="log level (default WARNING)")
    args = parser.parse_args(argv)

    from sapien.core.tracing import keep_opentelemetry_out_unless_configured

    keep_opentelemetry_out_unless_configured()  # before Celery imports kombu and redis
    from celery.platforms import maybe_drop_privileges

    from sapien.celery import app

    maybe_drop_privileges()  # as ``celery beat`` does: refuses to run set-uid as root
    app.Beat(schedule=args.schedule, loglevel=args.loglevel).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
