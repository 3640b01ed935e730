"""udptime: the lab's UDP date/time service."""
