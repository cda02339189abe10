"""``make bench``: Podium's figures beside baselines measured in the same run."""
