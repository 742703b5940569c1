"""Leader election: which scheduler may write. Safety rests on the fencing epoch, not on this."""
