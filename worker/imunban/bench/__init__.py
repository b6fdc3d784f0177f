"""`imunban bench`: the benchmark against the simulator."""
