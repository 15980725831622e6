"""The long-running process: wiring by mode, scheduler, lifecycle, signals, systemd notify."""
