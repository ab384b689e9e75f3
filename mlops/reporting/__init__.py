"""What a person reads: HTML helpers, charts, the run report, the monitor report, the registry site."""
