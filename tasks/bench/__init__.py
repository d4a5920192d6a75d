"""`reviewflow bench`: the pipeline's way side by side with the notebook's way, on the same data in one run."""
