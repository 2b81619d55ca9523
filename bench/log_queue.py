"""What one access-log line costs the request that writes it: synchronously (formatted and
written in the caller) against through the portal's queue handler (portal/logs.py), each
in a process of its own, with the portal's own `configure_logging`.

For each case: CPU of the calling thread per line (what the event loop pays), CPU of the
whole process per line (the writer thread included), and the caller's wall time per line
when every write takes `--slow-write-ms` (a full pipe to a log collector, a slow disk):
synchronously the request waits that long; through the queue it does not.

    .venv/bin/python bench/log_queue.py [--lines 100000] [--slow-write-ms 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

CHILD = """
import io, json, logging, sys, time
from portal.logs import configure_logging, request_id_var, stop_listener

queued, log_format = sys.argv[1] == "queue", sys.argv[2]
lines, slow = int(sys.argv[3]), float(sys.argv[4])

class Sink(io.TextIOBase):
    def write(self, text):
        if slow:
            time.sleep(slow)
        return len(text)

sys.stderr = Sink()
configure_logging("INFO", log_format, queued=queued)
access = logging.getLogger("portal.access")
request_id_var.set("0123456789abcdef0123456789abcdef")
path = "/api/v1/connect/session/6f1c2a9e-8a5e-4a47-9d53-2f0c5b1d7e10"
thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
for _ in range(lines):
    access.info("%s %s %d %.1fms", "GET", path, 200, 1.4,
                extra={"method": "GET", "path": path, "status": 200, "duration_ms": 1.4})
thread, wall = time.thread_time() - thread, time.perf_counter() - wall
stop_listener()
process = time.process_time() - process
print(json.dumps({"caller_cpu_us": thread / lines * 1e6, "caller_wall_us": wall / lines * 1e6,
                  "process_cpu_us": process / lines * 1e6}))
"""


def run(mode: str, log_format: str, lines: int, slow_seconds: float) -> dict[str, float]:
    answer = subprocess.run(
        [sys.executable, "-c", CHILD, mode, log_format, str(lines), str(slow_seconds)],
        cwd=REPOSITORY, capture_output=True, text=True, check=True, timeout=600)
    figures: dict[str, float] = json.loads(answer.stdout)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--slow-write-ms", type=float, default=1.0)
    parser.add_argument("--slow-lines", type=int, default=500)
    args = parser.parse_args()
    print("format mode   caller CPU µs/line  process CPU µs/line  caller wall µs/line "
          f"with {args.slow_write_ms:g} ms writes")
    for log_format in ("text", "json"):
        for mode in ("sync", "queue"):
            fast = run(mode, log_format, args.lines, 0)
            slow = run(mode, log_format, args.slow_lines, args.slow_write_ms / 1000)
            print(f"{log_format:6} {mode:6} {fast['caller_cpu_us']:18.1f} "
                  f"{fast['process_cpu_us']:20.1f} {slow['caller_wall_us']:20.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
