"""The hardware below the OS: fuses, flash, the boot environment, volatile state.

:class:`edgeward.board.base.Board` is the seam; :class:`VirtualBoard` models it
over files, with the semantics of the real parts (OTP bits only go 0 -> 1,
flash writes are atomic per partition, RAM is cleared at power-on).
"""
