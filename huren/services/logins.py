"""Failed logins: throttled per account and per client address, every one in the access log.

Failures are counted per key — the account (``a:<机构编码>/<用户名>``, whether or not it exists)
and the client address (``ip:<地址>``) — within a window of :attr:`Rule.window` seconds from the
first one. Up to ``free`` failures cost nothing; each further one makes the key wait a growing
delay (2, 4, 8, … seconds, at most ``max_delay``); at ``lock_at`` failures the key is locked for
``lock`` seconds. A login attempted while its key waits or is locked is refused with
:class:`~huren.errors.TooMany` (429, ``Retry-After``) before any password is checked, and logged.
A good login clears its account's counter (not its address's: one good account must not reset
an address that is guessing others). Counters live in the database (table ``login_failure``), so
every worker process and every channel (REST, SOAP, pages) shares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from huren.context import Clock, Principal
from huren.errors import Problem, TooMany
from huren.services.audit import AuditService
from huren.store import audit as audit_store
from huren.store import directory
from huren.store.database import Database


@dataclass(frozen=True, slots=True)
class Rule:
    free: int
    lock_at: int
    lock: int = 900
    window: int = 900
    max_delay: int = 60

    def wait(self, failures: int) -> int:
        """Seconds a key with this many failures waits before its next attempt."""
        if failures >= self.lock_at:
            return self.lock
        if failures < self.free:
            return 0
        return int(min(self.max_delay, 2 ** (failures - self.free + 1)))


ACCOUNT = Rule(free=5, lock_at=10)
#: many users of one hospital share an address behind its NAT: more room before it waits
ADDRESS = Rule(free=20, lock_at=50)


def account_key(org_code: str, username: str) -> str:
    return f"a:{org_code[:128]}/{username[:128]}"


class LoginThrottle:
    def __init__(
        self, db: Database, clock: Clock, audit: AuditService, *, account: Rule = ACCOUNT, address: Rule = ADDRESS
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self.rules = {"a": account, "ip": address}
        self._purged_at = -1e18

    def _keys(self, org_code: str, username: str, remote: str | None) -> list[str]:
        keys = [account_key(org_code, username)]
        if remote:
            keys.append(f"ip:{remote[:64]}")
        return keys

    def _rule(self, key: str) -> Rule:
        return self.rules[key.split(":", 1)[0]]

    def _who(self, org_code: str, username: str, remote: str | None) -> Principal:
        return Principal(org_code[:128], username[:128], "", remote[:64] if remote else None)

    def check(self, org_code: str, username: str, remote: str | None, channel: str) -> bool:
        """TooMany (logged) when the account or the address must wait or is locked; else whether
        the account has failures counted (a good login then clears them)."""
        now = int(self._clock.time())
        keys = self._keys(org_code, username, remote)
        with self._db.read() as conn:
            rows = directory.failures(conn, keys)
        waits = [(r["locked_until"] - now, k) for k, r in rows.items() if r["locked_until"] > now]
        if not waits:
            return account_key(org_code, username) in rows
        seconds, key = max(waits)
        with self._db.write() as conn:
            audit_store.log_access_many(
                conn, self._audit.rows(self._who(org_code, username, remote), "login_refused", [(None, None, f"{channel}:{key.split(':', 1)[0]}")])
            )
        what = "该账号" if key.startswith("a:") else "该地址"
        locked = rows[key]["failures"] >= self._rule(key).lock_at
        message = (
            f"{what}登录失败次数过多，已临时锁定，请 {seconds} 秒后再试"
            if locked
            else f"{what}登录失败次数过多，请 {seconds} 秒后再试"
        )
        raise TooMany(message, [Problem("password", "throttle", message)], retry_after=seconds)

    def failed(self, org_code: str, username: str, remote: str | None, channel: str, reason: str) -> None:
        """Count a failed login against its account and address, and log it (one transaction)."""
        now = int(self._clock.time())
        keys = self._keys(org_code, username, remote)
        with self._db.write() as conn:
            rows = directory.failures(conn, keys)
            for key in keys:
                rule = self._rule(key)
                old = rows.get(key)
                fresh = old is None or now - int(old["first_at"]) > rule.window
                count = 1 if fresh or old is None else int(old["failures"]) + 1
                wait = rule.wait(count)
                row = {
                    "key": key,
                    "failures": count,
                    "first_at": now if fresh or old is None else int(old["first_at"]),
                    "last_at": now,
                    "locked_until": now + wait if wait else 0,
                }
                directory.put_failure(conn, row, old is not None)
            audit_store.log_access_many(
                conn, self._audit.rows(self._who(org_code, username, remote), "login_failed", [(None, None, f"{channel}:{reason}")])
            )
            if now - self._purged_at > 60:
                self._purged_at = now
                directory.purge_failures(conn, now - max(r.window for r in self.rules.values()))

    def succeeded(self, org_code: str, username: str) -> None:
        with self._db.write() as conn:
            directory.clear_failures(conn, account_key(org_code, username))
