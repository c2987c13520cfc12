"""SMS phone verification: send a code, wait for the human, decide."""
