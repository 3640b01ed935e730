"""labchat: the multi-client chat room."""
