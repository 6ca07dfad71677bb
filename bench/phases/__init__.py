"""The phases of a run, one module each; every phase returns a frozen result from ``bench.results``.

``delivery`` (warm-up, (a), (b)), ``limits`` (physical limits), ``isolation`` (f), ``api`` (d),
``relay`` ((c) and (a2)), ``held_transaction`` (g), ``soak`` (e). ``bench.systems`` runs them in order.
"""
