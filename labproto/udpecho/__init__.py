"""udpecho: the lab's UDP message/ack exchange."""
