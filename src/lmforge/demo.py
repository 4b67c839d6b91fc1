"""`make demo`: grounded question answering over the bundled sample corpus (see lmforge.rag.demo)."""

from lmforge.rag.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
