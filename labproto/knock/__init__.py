"""knockknock: the lab's TCP knock-knock exchange, where the server is the audience."""
