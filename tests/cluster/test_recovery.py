"""The way back in when a cluster's admin password is lost: ``buzon user set-password
--database-url``, run beside the nodes, not through them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cluster.nodes import ADMIN, Cluster, api, login, within

NEW_PASSWORD = "a brand new password"


async def test_set_password_on_the_database_logs_every_node_out_and_in_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    n1, n2 = cluster.start("n1", "n2")
    async with api(n1) as http:
        old_token = await login(http, ADMIN, "cluster-password-1")

    def set_password(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "buzon", "user", "set-password", name],
            input=f"{NEW_PASSWORD}\n",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"BUZON_DATABASE_URL": cluster.database_url, "PATH": "/usr/bin:/bin"},
            check=False,
        )

    missing = set_password("nobody")
    assert missing.returncode != 0
    assert missing.stderr.strip().startswith("buzon:"), missing.stderr
    assert "nobody" in missing.stderr

    done = set_password(ADMIN)
    assert done.returncode == 0, done.stderr
    assert "1 login token revoked" in done.stdout

    async with api(n2, old_token) as with_old:

        async def refused() -> bool:
            return (await with_old.get("/users/me")).status_code == 401

        await within(5.0, refused, "the old token is refused on another node")
    async with api(n2) as http:
        assert await login(http, ADMIN, NEW_PASSWORD)
