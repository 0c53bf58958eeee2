"""Record, replay and score: the tools that play recordings to a live bus and record it back."""
