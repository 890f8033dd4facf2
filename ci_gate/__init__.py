"""syscall-gate: trace a scenario under strace, compute exact syscall metrics, judge them."""

__version__ = "0.1.0"
