"""labcalc: the lab's TCP calculator that remembers its client's name for the whole session."""
