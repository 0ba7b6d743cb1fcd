"""The pure core: history, tasks, replay. No I/O, no clock, no threads."""
