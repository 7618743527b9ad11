"""Apache Beam jobs of fewframes and the pieces they are built from."""
