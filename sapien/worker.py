"""``python -m sapien.worker``: a Celery worker started without Celery's command line.

``celery worker`` imports every subcommand before it runs one (the amqp shell's click-repl and
prompt_toolkit, pygments): about 8 MB in the worker and, through ``fork``, in each of its children.
This starts the same ``WorkController`` with the options ``sapien.processes.worker`` gives, and
those Sapien always wants: no gossip, mingle or event heartbeats (see ``sapien.processes``).
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapien.worker", description="Run a Celery worker of Sapien.")
    parser.add_argument("-Q", "--queues", default="sapien", help="comma-separated queues (default sapien)")
    parser.add_argument("-c", "--concurrency", type=int, default=2, help="child processes (default 2)")
    parser.add_argument("-n", "--hostname", help="node name, e.g. worker1@%%h (default celery@ the host name)")
    parser.add_argument("-l", "--loglevel", default="INFO", help="log level (default INFO)")
    args = parser.parse_args(argv)

    from sapien.core.tracing import keep_opentelemetry_out_unless_configured

    keep_opentelemetry_out_unless_configured()  # before Celery imports kombu and redis
    from celery.platforms import maybe_drop_privileges
    from celery.utils.log import mlevel
    from celery.utils.nodenames import default_nodename, host_format

    from sapien.celery import app

    maybe_drop_privileges()  # as ``celery worker`` does: refuses to run set-uid as root
    worker = app.Worker(
        hostname=host_format(default_nodename(args.hostname)),
        queues=args.queues.split(","),
        concurrency=args.concurrency,
        loglevel=mlevel(args.loglevel.upper()),
        optimization="default",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


if __name__ == "__main__":
    sys.exit(main())
