"""Pre-flight checks for 24/7 work: one function per check, facts only from the hardware probe."""
