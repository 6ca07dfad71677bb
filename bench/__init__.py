"""Sapien ESL benchmark: the whole pipeline on loopback, with a peer and physical limits measured in the same run.

    .venv/bin/python -m bench [--quick] [--soak] [--broker redis|amqp|both] [--events K] [--subs M]
                              [--no-peer] [--peer] [--profile] [--ref REV] [--keep]
    make bench BENCH_ARGS="--quick"

Starts, in a temporary directory: embedded PostgreSQL and Redis (free ports), a fast
receiver in a process of its own, and per broker Sapien's gunicorn (2 workers),
relay, Celery worker (2 processes) and beat; then the ``django-webhook`` peer on
the same database server, broker and receiver. Figures:

    (a) sustained end-to-end deliveries/s: K events x M subscriptions, first write -> last receipt
    (a2) the delivery side alone: due deliveries released at once, drained by the worker
    (b) latency event timestamp -> receipt, p50/p95/p99, at 100 events/s and at 80 % of (a)'s event rate
    (c) relay throughput (outbox rows/s) vs a raw-SQL claim-and-insert loop
    (d) API create throughput with ESL_ENABLED=true vs false
    (e) peak RSS of every process, its RSS and PSS when last seen; with --soak, RSS growth over a 10-minute run
    writes per delivery in (a) and (a2): rows, index entries and WAL bytes, from PostgreSQL's counters
    (f) healthy subscriptions' first attempts, alone and beside failing and slow ones
    (g) (a)'s workload while one transaction stays open
    limits: one keep-alive client posting to the receiver (req/s); single-row INSERTs (rows/s)
    goals: the cost goals (bench/targets.py), met or not in this run, per broker

A table is printed and the figures go to bench/results/<timestamp>.json. The exit
status is non-zero when a Sapien delivery was lost (received < expected). See bench/README.md.

Modules: ``config`` (flags -> ``Config``), ``stats`` (percentiles, ratios), ``results`` (the
frozen result of every phase), ``receiving`` (the receiver's control API), ``phases/`` (one
module per phase), ``systems`` (the phases in order, for Sapien and for the peer), ``report``
(the printed tables), ``targets`` (the cost goals, judged on the run's figures), ``writes``
(PostgreSQL's write counters around a phase), ``__main__`` (the run). ``procs``, ``stack``, ``peer``,
``loadgen`` and ``profile`` start and drive processes; ``receiver``, ``limits`` and ``sapien_side`` are the
scripts those processes run. ``sendpath`` is a run of its own: ``python -m bench.sendpath`` times the worker's
send path per delivery.
"""
