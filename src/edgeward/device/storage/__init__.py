"""The encrypted data area: fscrypt on an ext4 volume, its keys, and who may open them."""
