"""First-party baselines: the comparison methods of the papers and simple pipeline checks."""
