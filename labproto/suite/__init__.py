"""labsuite: all five lab services in one twistd process, for a lab machine serving them all."""
