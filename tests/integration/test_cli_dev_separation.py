"""``wfe run`` and ``wfe dev`` side by side: the CLI keeps its own database (``wfe run``
used to write versions into ``make dev``'s ``.wfe/wfe.db``), ``wfe dev-token`` signs
with the key ``wfe dev`` keeps, and the demo service follows the port (a second dev
server, or anything on the demo port, no longer stops ``wfe dev`` from starting)."""

from __future__ import annotations

import socket
from pathlib import Path

from _cli import Wfe
from google.auth import jwt

from shared.api.identity import DEV_AUDIENCE, DEV_INVOKER, DevKeys
from shared.app.registration import all_workflows
from shared.dev.server import DevOptions, running
from shared.engine.validation import parse_documents
from shared.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FLOW = """\
name: solo
steps:
  - {id: only, type: transform, config: {output: 42}}
"""


def test_run_uses_its_own_database_not_the_dev_servers(wfe: Wfe, tmp_path: Path) -> None:
    (tmp_path / "solo.yaml").write_text(FLOW)
    assert wfe("run", "solo.yaml", "--no-demo").code == 0
    assert (tmp_path / ".wfe" / "cli.db").exists()
    assert not (tmp_path / ".wfe" / "wfe.db").exists()  # make dev's
    [execution] = wfe("executions", "list", "--json").json()
    assert execution["result"] == 42
    assert wfe("run", "solo.yaml", "--no-demo", "--db", "other.db").code == 0
    assert (tmp_path / "other.db").exists()
    assert len(wfe("executions", "list", "--json").json()) == 1


async def test_dev_token_signs_with_the_key_wfe_dev_keeps(wfe: Wfe, tmp_path: Path) -> None:
    missing = wfe("dev-token")
    assert missing.code == 2 and ".wfe/dev-key.pem" in missing.stderr
    keys = DevKeys.generate()
    (tmp_path / ".wfe").mkdir()
    (tmp_path / ".wfe" / "dev-key.pem").write_text(keys.private_pem)
    token = wfe("dev-token", "--kind", "pubsub")
    assert token.code == 0, token.output
    certs = await keys.certs(None)
    claims = jwt.decode(token.stdout.strip(), certs=dict(certs), audience=DEV_AUDIENCE)
    assert claims["email"] == DEV_INVOKER


async def test_dev_server_takes_a_free_demo_port_when_its_own_is_taken(tmp_path: Path) -> None:
    settings = Settings.local_mode(str(tmp_path / "dev.db"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        options = DevOptions(examples=None, demo_port=taken, demo_port_fallback=True)
        async with running(settings, options) as server:
            assert server.demo_url is not None
            assert server.demo_url != f"http://127.0.0.1:{taken}"
            assert server.runtime is not None
            assert server.runtime.app.variable_defaults == {"demoUrl": server.demo_url}
        strict = DevOptions(examples=None, demo_port=taken)
        try:
            async with running(settings, strict):
                raise AssertionError("a pinned, taken demo port must fail the start")
        except OSError:
            pass


async def test_dev_server_restarts_register_nothing_new_and_fill_demo_url(tmp_path: Path) -> None:
    settings = Settings.local_mode(str(tmp_path / "dev.db"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        demo_port = probe.getsockname()[1]
    options = DevOptions(examples=EXAMPLES, demo_port=demo_port)
    for _ in range(2):  # the second start finds every example unchanged
        async with running(settings, options) as server:
            assert server.edge is not None
            app = server.edge.app
            heads = await all_workflows(app)
            assert len(heads) == len(server.loaded) >= 9
            assert {w.version for w in heads} == {1}
    async with running(settings, options) as server:
        assert server.edge is not None
        # examples/approval.yaml as POST /workflows sends it: demoUrl "" in the file
        raw = parse_documents((EXAMPLES / "approval.yaml").read_text(), "approval.yaml")[0]
        assert raw["variables"]["demoUrl"] == ""
        saved = await server.edge.app.create_workflow(raw, on_conflict="newVersion")
        assert saved.version == 2
        assert saved.variables["demoUrl"] == server.demo_url == f"http://127.0.0.1:{demo_port}"
