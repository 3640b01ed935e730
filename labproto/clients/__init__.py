"""The clients behind the ``labproto`` command, one module per subcommand."""
