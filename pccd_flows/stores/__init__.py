"""maggma stores: where candidates and cached reference energies live (embedded MontyDB or MongoDB)."""
