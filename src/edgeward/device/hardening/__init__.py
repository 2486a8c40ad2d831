"""The hardening audit on the gateway (daily and on demand).

Pure checks (:mod:`.checks` and the modules it draws on: console, accounts, sshd,
services, permissions) take text, names and stat records and return
:class:`~.finding.Finding` s, each with what to do about it; :mod:`.collect` does
the I/O (a root directory, the kernel command line, the fuses, the listening
sockets), and :mod:`.booted` finds the rootfs the last boot verified on a virtual
gateway.
"""
