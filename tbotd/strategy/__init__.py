"""The ML directional manager: pure decisions from prediction and position (step 4 of the cycle)."""
