"""Parse a trace and count its calls, nothing else: the parser's own cost.

Usage: python bench/parse_only.py TRACE [-e|--events]
Without -e only counts (the fast path); with it every call becomes an
event, as for a consumer that wants them all.
"""

from __future__ import annotations

import sys

from ci_gate.trace import source
from ci_gate.trace.parser import Selection, TraceParser


def main() -> int:
    trace = sys.argv[1]
    parser = TraceParser(
        select=None if bool({"-e", "--events"} & set(sys.argv[2:])) else Selection(())
    )
    events = 0
    for _ in source.events(source.resolve(trace), parser):
        events += 1
    stats = parser.stats
    print(f"lines {stats.lines} calls {stats.calls} events {events} damaged {stats.damaged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
