"""Energies on the Materials Project scale, reference phases and energies above the convex hull."""
