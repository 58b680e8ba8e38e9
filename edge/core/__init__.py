"""The pure core of the site daemon: no I/O, no asyncio, no logging.

- `model` — the indexed policy snapshot and the decision memory;
- `schedule` — schedules in the site's time zone, correct across DST;
- `decide` — `decide(policy, presentation, now, memory, state) -> Decision`;
- `doorstate` — the door state machine as a table `TRANSITIONS[mode][input] -> mode`,
  with `doorvalues` holding its inputs, outputs and state.

Everything here takes time and state as arguments and returns values; the shells in
`edge/` (hardware, store, site) do the I/O around it.
"""
