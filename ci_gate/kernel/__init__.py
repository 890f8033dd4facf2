"""What the kernel itself can tell about the run (tracefs), beyond what strace sees."""
