"""Sources read bytes from somewhere and yield :class:`kascan.model.Chunk` records."""
