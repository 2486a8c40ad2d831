"""The trust core: keys, digests, signatures, envelopes, certificates, sealing,
image manifests, hash trees, measurements and quotes.

Everything here is pure: bytes (or a readable stream) and a reference time in,
values or a raised :class:`edgeward.errors.SecurityError` out. Nothing here
opens a file, reads the clock or talks to a network.
"""
