"""The verified, measured boot chain: ROM -> BL2 -> kernel (initrd) -> OS stage."""
