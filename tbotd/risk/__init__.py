"""The risk guard: loss limits, cooldowns, exposure caps and the kill switch (pure), the
``[risk]`` section's translation, and the state's persistence."""
