"""What runs logged, read by what it is and drawn once for every page that shows it: the
report (`sweepkit report`) and the dashboard (`sweepkit dashboard`)."""
