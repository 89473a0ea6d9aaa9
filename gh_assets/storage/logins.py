"""``LoginEntries``: the login buckets (``gh:logins:{n}``, lower-cased login -> id), set and
cleared beside the users they name, and the lookup of an account by its login."""

from __future__ import annotations

from collections.abc import Mapping

from redis.exceptions import NoScriptError

from gh_assets.storage.cluster_steps import ClusterSteps
from gh_assets.storage.connection import LOGINS
from gh_assets.storage.schema import ascii_lower
from gh_assets.storage.schema_check import SchemaCheck


class LoginEntries(ClusterSteps, SchemaCheck):
    """Login entries, updated only where a bucket still maps a login to the id in hand."""

    def _update_logins(
        self, sets: Mapping[int, list[str]], removals: Mapping[int, list[str]]
    ) -> None:
        """Set ``sets`` (bucket -> [login, id, ...]) and remove ``removals`` where the bucket
        still maps the login to that id: one script call over every bucket on a single Redis,
        one per bucket (its own slot), pipelined, on a cluster."""
        buckets = sorted(set(sets) | set(removals))
        if not buckets:
            return

        def args(bucket: int) -> list[str]:
            setting, removing = sets.get(bucket, []), removals.get(bucket, [])
            return [str(len(setting) // 2), str(len(removing) // 2), *setting, *removing]

        if not self.cluster:
            keys = [self.logins_key(bucket) for bucket in buckets]
            self._logins(keys=keys, args=[a for bucket in buckets for a in args(bucket)])
            return
        # A cluster: every bucket is a slot of its own. Sets are plain HSETs, pipelined per node
        # (a cluster pipeline costs several times more per command); the conditional removals,
        # rare (a user gone or renamed), go through the script, one call per bucket.
        setting = [bucket for bucket in buckets if sets.get(bucket)]
        self._each(
            setting,
            self.logins_key,
            lambda pipe, bucket: pipe.hset(self.logins_key(bucket), items=sets[bucket]),
        )
        removing = [bucket for bucket in buckets if removals.get(bucket)]
        if not removing:
            return
        for attempt in range(2):
            try:
                with self.client.pipeline(transaction=False) as cluster_pipe:
                    for bucket in removing:
                        keys = [self.logins_key(bucket)]
                        self._logins(
                            keys=keys,
                            args=["0", str(len(removals[bucket]) // 2), *removals[bucket]],
                            client=cluster_pipe,
                        )
                    cluster_pipe.execute()
                return
            except NoScriptError:  # a cluster pipeline does not load scripts: load, once
                if attempt:
                    raise
                self.client.script_load(LOGINS)

    def user_id_for_login(self, login: str) -> int | None:
        """The id of the account whose login is ``login`` (A-Z in any case), or None. An entry
        the user's hash no longer confirms (a write cut short, see ``write_page``) is None."""
        self.check_schema()
        lower = ascii_lower(login)
        found = self.client.hget(self.login_key(lower), lower)
        if found is None:
            return None
        user_id = int(found)
        stored = self.client.hget(self.user_key(user_id), "login")
        if stored is None or ascii_lower(stored.decode()) != lower:
            return None
        return user_id
