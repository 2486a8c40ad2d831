"""The update loop the agent runs: desired state in, an A/B update out, and its end.

:meth:`OsUpdater.check` asks the server what this gateway should run; within
the maintenance window (or when forced) it installs that release through TUF
into the inactive slot, stages it and reboots. :meth:`OsUpdater.after_boot`
runs at every agent start: a staged release that booted is health-checked and
committed (burning the security version) or rolled back at once; one that did
not boot within the boot limit was already abandoned by BL2, and is reported.
OS updates never wait on, nor touch, app releases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edgeward.api_client import ApiClient
from edgeward.board.base import Board
from edgeward.board.bootenv import other
from edgeward.device.boot.chain import last_boot
from edgeward.device.boot.commit import burn_counters, commit_booted_slot
from edgeward.device.updates import installer, state
from edgeward.device.updates.client import TufClient
from edgeward.errors import Error, SecurityError, Unreachable

Reboot = Callable[[], None]
Health = Callable[[], str | None]  # None if healthy, else why not


@dataclass
class Outcome:
    action: str  # none | waiting | installed | committed | rolled-back | refused | failed
    version: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "version": self.version, "detail": self.detail}


class OsUpdater:
    def __init__(self, board: Board, server: str, api: Callable[[], ApiClient],
                 tuf: Callable[[str], TufClient], reboot: Reboot, health: Health,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.board, self.server, self.api, self.tuf = board, server, api, tuf
        self.reboot, self.health, self.say = reboot, health, say
        self._session: ApiClient | None = None  # one connection for an install's reports

    # --- reporting --------------------------------------------------------------
    def report(self, st: state.UpdateState, phase: str, version: str, progress: int = 0,
               detail: str = "") -> None:
        body = {"version": version, "phase": phase, "progress": progress,
                "detail": detail[:500], "rollout_id": st.rollout_id}
        st.queue(body)
        self.flush(st)

    def flush(self, st: state.UpdateState) -> None:
        try:
            with contextlib.ExitStack() as stack:
                api = self._session or stack.enter_context(self.api())
                while st.pending:
                    api.call("POST", "/v1/gateway/update", st.pending[0])
                    st.pending = st.pending[1:]
        except Unreachable:
            pass  # kept for the next contact
        except Error as e:  # refused by the server: drop it, say why
            self.say(f"update report refused: {e.message}")
            st.pending = st.pending[1:]
        state.save(self.board, st)

    # --- after a boot ------------------------------------------------------------
    def after_boot(self) -> Outcome:
        """Finish what the last boot left: a trial boot is health-checked and committed
        or rolled back; a staged release that did not come up is reported."""
        st = state.load(self.board)
        boot = last_boot(self.board)
        env = self.board.read_env()
        if boot is None or env is None or boot.get("verdict") != "booted":
            return Outcome("none")
        booted = str(boot["slot"])
        if env.try_boot and booted == env.active:  # on trial, whatever the agent remembers
            if st.phase != "staged":
                st.phase, st.slot = "staged", booted
                st.version = str(dict(boot.get("versions", {})).get("rootfs", ""))
            return self._trial(st, env, booted)
        if st.phase == "staged":
            if booted == st.slot:  # committed just before a power cut: burn if not yet
                done = burn_counters(self.board)
                return self._committed(st, f"slot {booted} committed" + (
                    f"; fused security version now {done.security_version}"
                    if done.burnt else ""))
            if env.last_fallback:
                return self._rolled_back(st, st.version, env.last_fallback)
            if st.restaged:  # staged twice and still not tried: give up, say so
                return self._rolled_back(st, st.version, f"slot {st.slot} was staged but "
                                         "never tried (the boot environment did not take it)")
            # the try-boot never reached the boot environment (power cut): stage again
            try:
                installer.verify_slot(self.board, st.slot)
            except Error as e:  # the slot is not what was written (or the state lies)
                return self._rolled_back(st, st.version, f"slot {st.slot} no longer "
                                         f"verifies: {e.message}")
            st.restaged = True
            state.save(self.board, st)
            installer.stage(self.board, st.slot)
            self.reboot()
            return self.after_boot()
        if st.pending:
            self.flush(st)
        return Outcome("none")

    def _trial(self, st: state.UpdateState, env: Any, booted: str) -> Outcome:
        self.report(st, "health-check", st.version)
        problem = self.health()
        if problem is not None:
            reason = f"health check failed: {problem}"
            self.board.write_env(_fallback(env, booted, reason))
            outcome = self._rolled_back(st, st.version, reason)
            self.reboot()
            return outcome
        done = commit_booted_slot(self.board)
        return self._committed(st, f"committed slot {done.slot}" + (
            f"; fused security version now {done.security_version}" if done.burnt else ""))

    def _committed(self, st: state.UpdateState, detail: str) -> Outcome:
        version = st.version
        installer.clean(self.board)  # before the outcome is saved: a power cut repeats it
        st.reset()
        self.report(st, "committed", version, 100, detail)
        self.say(f"update {version}: {detail}")
        return Outcome("committed", version, detail)

    def _rolled_back(self, st: state.UpdateState, version: str, reason: str) -> Outcome:
        installer.clean(self.board)  # before the outcome is saved: a power cut repeats it
        st.failed[version] = reason
        st.reset()
        self.report(st, "rolled-back", version, 0, reason)
        self.say(f"update {version} rolled back: {reason}")
        return Outcome("rolled-back", version, reason)

    # --- a check ---------------------------------------------------------------------
    def check(self, force: bool = False) -> Outcome:
        st = state.load(self.board)
        if st.phase == "staged":
            return self.after_boot()
        if st.pending:
            self.flush(st)
        with self.api() as api:
            desired: dict[str, Any] = api.call("GET", "/v1/gateway/desired")
        target = desired.get("os")
        boot = last_boot(self.board) or {}
        current = dict(boot.get("versions", {})).get("rootfs", "")
        if not target or target.get("version") == current:
            if st.phase == "downloading":  # no longer offered: drop what was fetched
                installer.clean(self.board)
                st.reset()
                state.save(self.board, st)
            return Outcome("none", current, "up to date")
        version = str(target["version"])
        if version in st.failed and not force:
            return Outcome("none", version, f"skipped: failed here before ({st.failed[version]})")
        if not force and not (desired.get("auto_update", True) and desired.get("window_open")):
            return Outcome("waiting", version, f"outside the maintenance window "
                                               f"{desired.get('window') or ''}".strip())
        st.rollout_id = desired.get("rollout_id")
        delta = target.get("delta") or {}
        return self.install(st, version, delta.get("path"), str(boot.get("slot", "a")), current)

    def install_version(self, version: str) -> Outcome:
        """Install ``version`` now, whatever the server's desired state (a field
        technician's request, or a server gone bad): TUF and the fused counter still
        decide whether it is taken."""
        st = state.load(self.board)
        boot = last_boot(self.board) or {}
        current = str(dict(boot.get("versions", {})).get("rootfs", ""))
        if version == current:
            return Outcome("none", current, "already running")
        return self.install(st, version, None, str(boot.get("slot", "a")), current)

    def install(self, st: state.UpdateState, version: str, delta_path: str | None,
                booted_slot: str, current: str) -> Outcome:
        if st.version != version:
            installer.clean(self.board, keep=version)
        st.phase, st.version, st.from_version = "downloading", version, current
        state.save(self.board, st)
        with self.api() as session:
            self._session = session
            try:
                return self._install(st, version, delta_path, booted_slot)
            finally:
                self._session = None

    def _install(self, st: state.UpdateState, version: str, delta_path: str | None,
                 booted_slot: str) -> Outcome:
        tuf = self.tuf(booted_slot)
        verified = False  # TUF vouched for every byte: a refusal now is the release's own
        try:
            self.report(st, "checking", version)
            release = installer.plan(tuf, self.board, version, delta_path)
            st.security_version = release.security_version
            kernel, rootfs, how = installer.fetch(
                tuf, self.board, release, booted_slot,
                lambda phase, pct: self.report(st, phase, version, pct))
            env = self.board.read_env()
            assert env is not None
            verified = True
            slot = installer.write_and_verify(
                self.board, env, kernel, rootfs, version,
                lambda phase, pct: self.report(st, phase, version, pct), release.tpm_policy)
        except SecurityError as e:
            if verified:  # a refusal caused by an attack or a stale mirror is not remembered:
                st.failed[version] = e.message  # the release installs once it stops
            else:
                st.failed.pop(version, None)
            st.reset()
            self.report(st, "refused", version, 0, e.message)
            installer.clean(self.board)
            self.say(f"update {version} refused: {e.message}")
            return Outcome("refused", version, e.message)
        except Unreachable:
            raise  # downloads resume at the next check
        except Error as e:
            st.reset()
            self.report(st, "failed", version, 0, e.message)
            return Outcome("failed", version, e.message)
        finally:
            tuf.close()
        env = self.board.read_env()
        if env is not None and env.last_fallback:  # an older release's, reported already:
            self.board.write_env(replace(env, last_fallback=""))  # not this one's, if cut
        st.phase, st.slot, st.restaged = "staged", slot, False  # intent first (power cuts)
        state.save(self.board, st)
        installer.stage(self.board, slot)
        self.report(st, "rebooting", version, 100, f"slot {slot} written ({how}); try-boot")
        self.say(f"update {version}: slot {slot} written ({how}), rebooting")
        self._session = None  # the connection does not survive the reboot
        self.reboot()
        return self.after_boot()


def _fallback(env: Any, booted: str, note: str) -> Any:
    return replace(env, active=other(booted), try_boot=False, boot_count=0,
                   last_fallback=note[:256])
