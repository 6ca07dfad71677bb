"""The public write services of availability, one module per layer.

``declarations`` (manual status, overrides), ``connections`` (OAuth sessions,
presence connections, the offline debounce) and ``profiles`` (schedule profiles).
Each takes the user's row lock (``state.locked_state``) before it writes, then
recomputes through ``availability.state``: one lock order on every path.
"""
