"""``python -m schemagen.testing --port 8000``: serve the fault server out of process."""

from schemagen.testing.server import main

main()
